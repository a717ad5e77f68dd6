"""OpenCV image operations on H x W x C (or H x W) arrays: resize, colour, pad, crop.

The geometric kernels that change coordinates (``ResizePadMat``, ``CropMat``,
``LetterBoxMat``) also set ``scale`` and ``offset`` so that a detection found in their
output maps back into their input with one convention::

    original_xy = (xy - offset) / scale

Each sets the transform of its own step only; a chain of them does not compose it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from torchweir.errors import InputError
from torchweir.kernels.base import InstanceContext, ItemKernel, Kernel, Payload
from torchweir.kernels.registry import registered

__all__ = [
    "BOX_KEYS",
    "COLORS",
    "MAX_SIDE",
    "CropMat",
    "CvtColorMat",
    "LetterBoxMat",
    "ResizeMat",
    "ResizePadMat",
    "as_image",
    "pad_values",
]

Image = np.ndarray[Any, np.dtype[Any]]

#: torchpipe's bound on ``resize_h`` / ``resize_w``.
MAX_SIDE = 1 << 20
COLORS = ("rgb", "bgr")
#: Where ``CropMat`` looks for ``[x1, y1, x2, y2]``: torchpipe v0's ``TASK_BOX_KEY``, v1's,
#: then the plain name.
BOX_KEYS = ("_box", "BOX", "box")


def as_image(data: Any, kernel: str) -> Image:
    """``data`` if it is a non-empty H x W or H x W x C array.

    Raises:
        InputError: anything else, naming the type or the shape.
    """
    if not isinstance(data, np.ndarray):
        raise InputError(f"{kernel} expects an image array (H x W x C), got {type(data).__name__}")
    if data.ndim not in (2, 3) or data.size == 0:
        raise InputError(
            f"{kernel} expects a non-empty H x W or H x W x C image, got shape {data.shape}"
        )
    return data


def opencv_threads_for(ctx: InstanceContext) -> None:
    """Make OpenCV single-threaded when a node's instances provide the parallelism.

    OpenCV parallelises ``resize`` (and more) on its own pool; N instance threads each
    fanning out over every core oversubscribe the machine. The setting is process-wide,
    and only ever lowered here.
    """
    if ctx.instance_num > 1 and cv2.getNumThreads() != 1:
        cv2.setNumThreads(1)


def _side(value: int, name: str) -> int:
    """Validate a target size such as ``resize_h`` at construction."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_SIDE:
        raise ValueError(f"{name} must be an int in [1, {MAX_SIDE}], got {value!r}")
    return value


def pad_values(value: str | int | Sequence[int], name: str = "pad_value") -> tuple[int, ...]:
    """``114``, ``"114"`` or ``"114,114,114"`` -> a 4-value OpenCV scalar.

    One value pads every channel; three give the B, G, R (or R, G, B) values in the
    image's own channel order.

    Raises:
        ValueError: not one or three integers in [0, 255] (names the value).
    """
    parts: Sequence[Any]
    if isinstance(value, str):
        parts = [p.strip() for p in value.split(",")]
    elif isinstance(value, int):
        parts = [] if isinstance(value, bool) else [value]
    else:
        parts = list(value)
    try:
        values = [int(p) for p in parts]
    except (TypeError, ValueError):
        values = []
    if len(values) not in (1, 3) or not all(0 <= v <= 255 for v in values):
        raise ValueError(f"{name} must be one or three integers in [0, 255], got {value!r}")
    if len(values) == 1:
        return (values[0],) * 4
    return (*values, 0)


def _round(x: float) -> int:
    """Round half away from zero, as C++ ``std::round`` (torchpipe), not to even."""
    return int(x + 0.5)


def _keep_channels(out: Image, like: Image) -> Image:
    """OpenCV drops a trailing channel axis of 1; put it back."""
    if like.ndim == 3 and out.ndim == 2:
        return out[:, :, None]
    return out


def _fit(image: Image, max_h: int, max_w: int) -> tuple[Image, float]:
    """Resize ``image`` to fit ``max_h x max_w`` keeping its aspect ratio."""
    h, w = image.shape[:2]
    scale = min(max_h / h, max_w / w)
    new_h = min(max_h, max(1, _round(h * scale)))
    new_w = min(max_w, max(1, _round(w * scale)))
    if (new_h, new_w) == (h, w):
        return image, scale
    resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    return _keep_channels(resized, image), scale


def _pad(image: Image, top: int, bottom: int, left: int, right: int, value: Sequence[int]) -> Image:
    padded = cv2.copyMakeBorder(
        image, top, bottom, left, right, cv2.BORDER_CONSTANT, value=tuple(value)
    )
    return _keep_channels(padded, image)


@registered("ResizeMat")
class ResizeMat(ItemKernel):
    """Resize to ``resize_h x resize_w`` with bilinear interpolation (``cv2.INTER_LINEAR``).

    The aspect ratio is not kept; use ``ResizePadMat`` or ``LetterBoxMat`` for that.

    Raises:
        ValueError: at construction, a size outside ``[1, 1048576]``.
    """

    def __init__(self, resize_h: int, resize_w: int) -> None:
        self.resize_h = _side(resize_h, "resize_h")
        self.resize_w = _side(resize_w, "resize_w")

    def setup(self, ctx: InstanceContext) -> Kernel:
        opencv_threads_for(ctx)
        return self

    def __repr__(self) -> str:
        return f"ResizeMat(resize_h={self.resize_h}, resize_w={self.resize_w})"

    def process(self, item: Payload) -> None:
        image = as_image(item["data"], "ResizeMat")
        try:
            out = cv2.resize(image, (self.resize_w, self.resize_h), interpolation=cv2.INTER_LINEAR)
        except cv2.error as exc:
            raise InputError(
                f"ResizeMat cannot resize a {image.dtype} {image.shape} array"
            ) from exc
        item["result"] = _keep_channels(out, image)


@registered("CvtColorMat")
@registered("cvtColorMat")
class CvtColorMat(ItemKernel):
    """Convert a 3-channel image between BGR and RGB; set ``color`` to the target.

    Registered as ``cvtColorMat`` (torchpipe v0's spelling) and ``CvtColorMat`` (v1's).
    The source colour is the request's ``color`` (``DecodeMat`` sets ``"bgr"``); a request
    without one is taken as BGR, OpenCV's order. Same colour: ``result`` is ``data``
    itself, not a copy.

    Args:
        color: the target, ``"rgb"`` or ``"bgr"``.
    """

    def __init__(self, color: str) -> None:
        target = str(color).strip().lower()
        if target not in COLORS:
            raise ValueError(f"color must be 'rgb' or 'bgr', got {color!r}")
        self.color = target

    def __repr__(self) -> str:
        return f"CvtColorMat(color={self.color!r})"

    def process(self, item: Payload) -> None:
        image = as_image(item["data"], "CvtColorMat")
        source = item.get("color", "bgr")
        if not isinstance(source, str) or source.lower() not in COLORS:
            raise InputError(
                f"CvtColorMat: the request's color must be 'rgb' or 'bgr', got {source!r}"
            )
        if source.lower() != self.color:
            if image.ndim != 3 or image.shape[2] != 3:
                raise InputError(
                    f"CvtColorMat swaps the channels of H x W x 3 images, got shape {image.shape}"
                )
            image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)  # the same swap both ways
        item["result"] = image
        item["color"] = self.color


@registered("ResizePadMat")
class ResizePadMat(ItemKernel):
    """Fit into ``max_h x max_w`` keeping the aspect ratio, top-left, padding right/bottom.

    Sets ``result`` (always ``max_h x max_w``), ``scale`` (resized / original; the sizes
    are rounded half up, as torchpipe does) and ``offset = (0, 0)``.

    Args:
        max_h, max_w: the output size.
        pad_value: one value, or ``"b,g,r"``, for the padded area.
    """

    def __init__(self, max_h: int, max_w: int, pad_value: str | int = 0) -> None:
        self.max_h = _side(max_h, "max_h")
        self.max_w = _side(max_w, "max_w")
        self.pad_value = pad_values(pad_value)

    def __repr__(self) -> str:
        return (
            f"ResizePadMat(max_h={self.max_h}, max_w={self.max_w}, pad_value={self.pad_value[:3]})"
        )

    def process(self, item: Payload) -> None:
        image = as_image(item["data"], "ResizePadMat")
        resized, scale = _fit(image, self.max_h, self.max_w)
        h, w = resized.shape[:2]
        item["result"] = _pad(resized, 0, self.max_h - h, 0, self.max_w - w, self.pad_value)
        item["scale"] = scale
        item["offset"] = (0, 0)


@registered("LetterBoxMat")
class LetterBoxMat(ItemKernel):
    """Fit into ``resize_h x resize_w`` keeping the aspect ratio, centred, padded around.

    torchpipe v1's ``LetterBoxMat``: ``scale = min(W / w, H / h)``, the resized size is
    rounded, the left/top padding is the floor of half the slack. Sets ``result``,
    ``scale`` and ``offset = (pad_left, pad_top)``.

    Args:
        resize_h, resize_w: the output size.
        pad_value: one value or ``"b,g,r"``; 114 (grey) is the YOLO convention.
        pad_val: torchpipe v1's name for ``pad_value``; wins when given.
    """

    def __init__(
        self,
        resize_h: int,
        resize_w: int,
        pad_value: str | int = 114,
        pad_val: str | int | None = None,
    ) -> None:
        self.resize_h = _side(resize_h, "resize_h")
        self.resize_w = _side(resize_w, "resize_w")
        if pad_val is not None:
            self.pad_value = pad_values(pad_val, "pad_val")
        else:
            self.pad_value = pad_values(pad_value)

    def __repr__(self) -> str:
        return (
            f"LetterBoxMat(resize_h={self.resize_h}, resize_w={self.resize_w}, "
            f"pad_value={self.pad_value[:3]})"
        )

    def process(self, item: Payload) -> None:
        image = as_image(item["data"], "LetterBoxMat")
        resized, scale = _fit(image, self.resize_h, self.resize_w)
        h, w = resized.shape[:2]
        top, left = (self.resize_h - h) // 2, (self.resize_w - w) // 2
        bottom, right = self.resize_h - h - top, self.resize_w - w - left
        item["result"] = _pad(resized, top, bottom, left, right, self.pad_value)
        item["scale"] = scale
        item["offset"] = (left, top)


@registered("CropMat")
class CropMat(ItemKernel):
    """Crop the box ``[x1, y1, x2, y2]`` (pixels, ``x2``/``y2`` exclusive) from the image.

    The box is read from the request's ``_box`` (torchpipe v0's key), ``BOX`` (v1's) or
    ``box``, the first present. ``result`` is a view into ``data``, as torchpipe's ROI:
    no copy is made (``Mat2Tensor`` copies). Sets ``scale = 1.0`` and
    ``offset = (-x1, -y1)``, so ``original = xy - offset = xy + (x1, y1)``.
    """

    def process(self, item: Payload) -> None:
        image = as_image(item["data"], "CropMat")
        key = next((k for k in BOX_KEYS if k in item), None)
        if key is None:
            raise InputError(
                f"CropMat needs a box [x1, y1, x2, y2] in one of {', '.join(BOX_KEYS)}"
            )
        x1, y1, x2, y2 = _box(item[key], key)
        h, w = image.shape[:2]
        if not (0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h):
            raise InputError(
                f"CropMat: box {key}={[x1, y1, x2, y2]} is empty or outside the {w}x{h} image "
                "(need 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height)"
            )
        item["result"] = image[y1:y2, x1:x2]
        item["scale"] = 1.0
        item["offset"] = (-x1, -y1)


def _box(value: Any, key: str) -> tuple[int, int, int, int]:
    """Four integers from a list, tuple or array; floats are refused, not rounded."""
    try:
        coords = list(value)
    except TypeError:
        coords = []
    if len(coords) != 4 or not all(
        isinstance(c, (int, np.integer)) and not isinstance(c, bool) for c in coords
    ):
        raise InputError(f"CropMat: {key} must be 4 integers [x1, y1, x2, y2], got {value!r}")
    x1, y1, x2, y2 = (int(c) for c in coords)
    return x1, y1, x2, y2
