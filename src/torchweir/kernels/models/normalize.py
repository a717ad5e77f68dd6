"""torchpipe's ``mean``/``std``, fused into the model's input.

torchpipe inserts the normalisation into the TensorRT network, so a uint8 image goes
straight from the decoder into the model and is converted once, on the model's device,
in the model's batch. :class:`Normalize` does the same for torch modules; ONNX models
call :func:`normalize` on the batch before it is handed to onnxruntime.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from torchweir.kernels.models.config import Normalization

__all__ = ["DTYPES", "Normalize", "normalize"]

#: ``precision`` -> the dtype the model's weights and inputs are cast to.
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def normalize(
    x: torch.Tensor,
    mean: torch.Tensor | None,
    std: torch.Tensor | None,
    dtype: torch.dtype,
) -> torch.Tensor:
    """``(x - mean) / std`` in float32 over dimension 1, then cast to ``dtype``.

    Without ``mean``/``std`` only images (uint8) and floating tensors are cast; other
    integer inputs (token ids, indices) pass through as they are.
    """
    if mean is not None and std is not None:
        shape = (1, -1, *([1] * (x.dim() - 2)))
        x = (x.float() - mean.view(shape)) / std.view(shape)
    elif not (x.is_floating_point() or x.dtype == torch.uint8):
        return x
    return x if x.dtype == dtype else x.to(dtype)


def constants(
    normalization: Normalization | None, device: torch.device
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """``mean`` and ``std`` as float32 tensors on ``device``, or ``(None, None)``."""
    if normalization is None:
        return None, None
    return (
        torch.tensor(normalization.mean, dtype=torch.float32, device=device),
        torch.tensor(normalization.std, dtype=torch.float32, device=device),
    )


class Normalize(nn.Module):
    """Wraps a model so that it takes raw (uint8 or float) inputs.

    The wrapper runs :func:`normalize` on the batch, then the model. Normalising in float32
    before the cast keeps fp16/bf16 models as accurate as their precision allows.
    """

    mean: torch.Tensor | None
    std: torch.Tensor | None

    def __init__(
        self,
        model: Any,
        normalization: Normalization | None,
        dtype: torch.dtype,
        device: torch.device,
    ) -> None:
        super().__init__()
        self.model = model
        self.dtype = dtype
        mean, std = constants(normalization, device)
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)

    def forward(self, x: torch.Tensor) -> Any:
        return self.model(normalize(x, self.mean, self.std, self.dtype))
