"""Fusing ``ResizeMat, cvtColorMat, Mat2Tensor`` into one OpenCV call.

The chain costs four or five calls into C per image (resize, cvtColor, a transpose copy,
the tensor copy), and each one gives the GIL back and must win it again: with many decode
instances, waiting for the GIL then takes longer than the work. ``cv2.dnn.blobFromImage``
does the same resize (``INTER_LINEAR``), the same channel swap and the HWC -> CHW layout in
one call that releases the GIL, and its output equals the chain's bit for bit (a test
checks it on every bundled photo).

``Sequential`` applies :func:`fuse_resize_cvtcolor_tensor` to its steps; anything the
fast path does not cover (not a 3-channel uint8 image, an unknown colour) runs the three
original steps, so errors are the same as unfused. The fused step leaves the decoded image
in ``data``, where the chain leaves the colour-converted one, so the graph builder fuses
only nodes whose ``data`` nothing after them reads.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from torchweir.kernels.base import InstanceContext, ItemKernel, Kernel, Payload
from torchweir.kernels.compose import fuse_runs
from torchweir.kernels.cpu.ops import CvtColorMat, ResizeMat
from torchweir.kernels.cpu.tensor import Mat2Tensor

__all__ = ["ResizeCvtColorTensor", "fuse_resize_cvtcolor_tensor"]


class ResizeCvtColorTensor(ItemKernel):
    """``ResizeMat`` -> ``cvtColorMat`` -> ``Mat2Tensor`` (NCHW, host) in one call."""

    def __init__(self, resize: ResizeMat, convert: CvtColorMat, to_tensor: Mat2Tensor) -> None:
        self.steps = (resize, convert, to_tensor)
        self.size = (resize.resize_w, resize.resize_h)
        self.color = convert.color

    def __repr__(self) -> str:
        return f"ResizeCvtColorTensor({self.size[1]}x{self.size[0]}, {self.color})"

    def setup(self, ctx: InstanceContext) -> Kernel:
        for step in self.steps:
            step.setup(ctx)
        return self

    def process(self, item: Payload) -> None:
        image = item["data"]
        source = item.get("color", "bgr")
        if not (
            isinstance(image, np.ndarray)
            and image.dtype == np.uint8
            and image.ndim == 3
            and image.shape[2] == 3
            and source in ("bgr", "rgb")
        ):
            self._unfused(item)
            return
        import torch

        blob = cv2.dnn.blobFromImage(
            image, 1.0, self.size, (0, 0, 0), source != self.color, False, cv2.CV_8U
        )
        item["result"] = torch.from_numpy(blob)  # a fresh 1x3xHxW array: nothing shares it
        item["color"] = self.color
        item["data_format"] = "nchw"

    def _unfused(self, item: Payload) -> None:
        for position, step in enumerate(self.steps):
            if position:
                item["data"] = item.pop("result")
            step.process(item)


def fuse_resize_cvtcolor_tensor(steps: list[tuple[str, Kernel]]) -> list[tuple[str, Kernel]]:
    """Replace each ``ResizeMat, cvtColorMat, Mat2Tensor`` run (default filters between
    them, a plain host NCHW tensor at the end) with one :class:`ResizeCvtColorTensor`."""
    return fuse_runs(steps, 3, _fusable, lambda run: ResizeCvtColorTensor(*(k for _, k in run)))  # type: ignore[arg-type]


def _fusable(window: list[tuple[str, Any]]) -> bool:
    (_, resize), (f2, convert), (f3, to_tensor) = window
    return (
        type(resize) is ResizeMat
        and type(convert) is CvtColorMat
        and type(to_tensor) is Mat2Tensor
        and f2 in ("", "swap")
        and f3 in ("", "swap")
        and to_tensor.device == "cpu"
        and to_tensor.data_format == "nchw"
        and not to_tensor.pinned
    )
