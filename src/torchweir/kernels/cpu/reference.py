"""The plain-OpenCV preprocessing that the kernels must match, and benchmarks beat.

No validation, no request dicts, no runtime: what a service would write by hand. The
consistency tests compare ``S[DecodeMat,ResizeMat,cvtColorMat,Mat2Tensor]`` against it,
and ``benchmarks/cpu_decode_scaling.py`` runs it in a thread pool as the baseline.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = ["preprocess_reference"]


def preprocess_reference(
    jpeg: bytes, resize_h: int, resize_w: int, color: str = "rgb"
) -> torch.Tensor:
    """Decode, resize (bilinear), convert to ``color`` and return a ``1 x 3 x H x W`` uint8 tensor.

    Raises:
        ValueError: OpenCV cannot decode ``jpeg``.
    """
    import torch

    image = cv2.imdecode(
        np.frombuffer(jpeg, dtype=np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION
    )
    if image is None:
        raise ValueError(f"cv2.imdecode could not decode {len(jpeg)} bytes")
    image = cv2.resize(image, (resize_w, resize_h), interpolation=cv2.INTER_LINEAR)
    if color == "rgb":
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return torch.from_numpy(image).permute(2, 0, 1).unsqueeze(0).contiguous()
