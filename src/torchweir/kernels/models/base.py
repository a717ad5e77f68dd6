"""What :class:`TorchModel` and :class:`OnnxModel` share: settings, TOML keys, direct use."""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from torchweir.errors import ConfigError
from torchweir.kernels.base import InstanceContext, Kernel, Outcome, Payload
from torchweir.kernels.models.config import (
    InputShape,
    ModelConfig,
    check_max_batch,
    parse_normalization,
    shape_params,
)

__all__ = ["Floats", "ModelKernel", "Shape", "model_file"]

#: ``mean``/``std`` as TOML writes them (``"123.675, 116.28, 103.53"``) or as numbers.
Floats = str | float | Sequence[float] | None
#: A per-item shape, ``"3x224x224"`` or ``(3, 224, 224)``; empty when unknown.
Shape = str | Sequence[int]


def model_file(path: str | os.PathLike[str]) -> Path:
    """The model file at ``path``, checked when the graph is built rather than at start.

    Raises:
        ConfigError: no such file.
    """
    found = Path(path)
    if not found.is_file():
        raise ConfigError(f"model file {str(path)!r} does not exist", key="model")
    return found


class ModelKernel(Kernel):
    """Common ground of the model kernels.

    The kernel object holds settings only; :meth:`setup` returns the object that runs one
    instance. Calling :meth:`forward` on the kernel itself sets up one CPU instance the
    first time, so that a model kernel also works directly, outside a runtime.

    Args:
        mean: per-channel means on the 0-255 scale, fused into the model's input.
        std: per-channel standard deviations on the same scale.
        max_batch: the largest batch run at once; larger batches run in chunks.
        input_shape: the per-item shape (``"3x224x224"``); items of another shape fail
            with :class:`~torchweir.errors.InputError` and the rest of the batch runs.
        min_input_shape: the smallest per-item shape, when dimensions may vary between
            it and ``input_shape`` (torchpipe's ``min``/``max`` profile range).
    """

    def __init__(
        self,
        *,
        mean: Floats = None,
        std: Floats = None,
        max_batch: int = 32,
        input_shape: Shape = "",
        min_input_shape: Shape = "",
    ) -> None:
        self.max_batch = check_max_batch(max_batch)
        self.config = ModelConfig(
            max_batch=self.max_batch,
            shape=InputShape.parse(input_shape, min_input_shape),
            normalization=parse_normalization(mean, std),
        )
        self._lock = threading.RLock()
        self._direct: Kernel | None = None

    @staticmethod
    def common_params(params: Mapping[str, Any], kernel: str) -> dict[str, Any]:
        """The keyword arguments every model kernel reads from a node's keys.

        Raises:
            ConfigError: no ``model`` key, or a bad ``max``/``min``/``input_shape``.
        """
        model = params.get("model")
        if model is None or (isinstance(model, str) and not model.strip()):
            raise ConfigError(f"{kernel} needs model = '<path of the model file>'", key="model")
        kwargs = shape_params(params)
        kwargs.update({key: params[key] for key in ("mean", "std") if key in params})
        kwargs["model"] = model
        return kwargs

    def forward(self, items: list[Payload]) -> Outcome:
        """Run a batch on a CPU instance set up on first use (direct use, not the runtime's)."""
        with self._lock:
            if self._direct is None:
                self._direct = self.setup(InstanceContext(node=type(self).__name__))
        return self._direct.forward(items)
