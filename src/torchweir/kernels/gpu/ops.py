"""Tensor kernels for the GPU path: resize, colour order, crop, pad, device moves.

They run on the instance's own CUDA stream (made current by its binding). ``ResizeTensor``
resizes a batch of ``uint8`` RGB images with one Triton kernel where Triton is installed
(:mod:`.resize_kernel`). Otherwise it batches torch's work by image size: all images of
one size are resized with one stacked ``interpolate`` call, so a batch of photos from a few
camera sizes costs a few launches, not one per image. Either way the batch's torch calls
are one TorchScript call (:mod:`.batch_ops`), so its thread waits for the GIL once per
batch, not once per op.
"""

from __future__ import annotations

import copy
import functools
import itertools
import logging
from typing import Any, Protocol

from torchweir.errors import InputError
from torchweir.kernels.base import InstanceContext, ItemKernel, Kernel, Outcome, Payload
from torchweir.kernels.registry import register_kernel, registered

__all__ = [
    "RESIZE_KERNELS",
    "CpuTensor",
    "CropTensor",
    "GpuTensor",
    "PadTensor",
    "ResizeTensor",
    "cvtColorTensor",
    "flat_resizer",
    "planar_table",
]

RESIZE_KERNELS = ("auto", "triton", "torch")

_log = logging.getLogger("torchweir.kernels")


class FlatResizer(Protocol):
    """Resizes the images a table places in a flat ``uint8`` buffer into N x 3 x H x W
    rows, reversing their channel order with ``flip``."""

    def __call__(self, flat: Any, table: Any, *, flip: bool) -> Any: ...


def _chw(data: Any) -> tuple[int, int, int]:
    """C, H and W of a CHW or 1CHW tensor (read with no torch call); InputError otherwise."""
    import torch

    if not isinstance(data, torch.Tensor):
        raise InputError(f"expected an image tensor, got {type(data).__name__}")
    shape = tuple(data.shape)
    if len(shape) == 3 or (len(shape) == 4 and shape[0] == 1):
        channels, height, width = shape[-3:]
        return channels, height, width
    raise InputError(f"expected a C x H x W or 1 x C x H x W tensor, got shape {shape}")


def _as_nchw(data: Any) -> Any:
    """A 1 x C x H x W view of a CHW or 1CHW tensor; InputError for anything else."""
    _chw(data)
    return data[None] if data.dim() == 3 else data


def planar_table(heights: list[int], widths: list[int]) -> list[int]:
    """Where planar 3 x H x W images lie, one after another in one flat buffer: ``offset,
    height, width`` per image, flattened (the Triton resize's table)."""
    table: list[int] = []
    offset = 0
    for height, width in zip(heights, widths, strict=True):
        table += (offset, height, width)
        offset += 3 * height * width
    return table


def flat_resizer(choice: str, device: Any, size: tuple[int, int]) -> FlatResizer | None:
    """The Triton resize to ``size`` for an instance on ``device``, compiled, or None where
    torch resizes: ``choice`` is ``"torch"``, the device is no GPU, or (``"auto"``) Triton
    is missing or fails to compile.

    Raises:
        ImportError: ``choice`` is ``"triton"`` and Triton is missing.
    """
    if choice == "torch" or getattr(device, "type", "cpu") != "cuda":
        return None
    try:
        from torchweir.kernels.gpu import resize_kernel
    except ImportError as exc:
        if choice == "triton":
            raise ImportError(
                f"ResizeTensor(resize_kernel='triton') needs Triton, and importing it failed "
                f"({exc}); install triton (torch's CUDA wheels bring it) or set "
                "resize_kernel = 'torch'"
            ) from exc
        return None
    try:
        for flip in (False, True):
            resize_kernel.warm_up(device, *size, flip)
    except Exception as exc:
        if choice == "triton":
            raise
        _log.warning("the Triton resize failed to compile (%s); resizing with torch", exc)
        return None
    height, width = size
    return functools.partial(resize_kernel.resize_flat, height=height, width=width)


@registered("ResizeTensor")
class ResizeTensor(Kernel):
    """Bilinear resize (half-pixel centres, no antialias: OpenCV's ``INTER_LINEAR``).

    ``uint8`` input gives ``uint8`` output, rounded, so the GPU path feeds a model the same
    kind of input as ``ResizeMat`` does (torchpipe returns float here; the models
    normalise either).

    Args:
        resize_h, resize_w: the output size.
        max_batch: images per batch.
        resize_kernel: ``"auto"`` (the default: Triton where it is installed, else torch),
            ``"triton"`` or ``"torch"``. Triton resizes a batch of ``uint8`` 3-channel
            images in one launch (:mod:`.resize_kernel`); other images, and every image
            under ``"torch"``, go through torch's ``interpolate``. The two agree to within
            one grey level.
    """

    device = "cuda"

    def __init__(
        self, resize_h: int, resize_w: int, max_batch: int = 64, resize_kernel: str = "auto"
    ) -> None:
        for name, value in (("resize_h", resize_h), ("resize_w", resize_w)):
            if not 1 <= value <= 1048576:
                raise ValueError(f"{name} must be in 1..1048576, got {value}")
        if resize_kernel not in RESIZE_KERNELS:
            raise ValueError(
                f"resize_kernel must be one of {RESIZE_KERNELS}, got {resize_kernel!r}"
            )
        self.size = (resize_h, resize_w)
        self.max_batch = max_batch
        self.resize_kernel = resize_kernel
        self._resize_flat: FlatResizer | None = None
        from torchweir.kernels.gpu.batch_ops import batch_ops, compiled, flat_images

        # compiled here, on the thread that builds the graph, not in the first batch
        self._ops = batch_ops()
        self._flat_images, _ = compiled(flat_images)

    def setup(self, ctx: InstanceContext) -> Kernel:
        import torch

        instance = copy.copy(self)  # a subclass stays itself
        instance._resize_flat = flat_resizer(
            self.resize_kernel, torch.device(ctx.device), self.size
        )
        return instance

    @property
    def triton(self) -> bool:
        """Whether this instance resizes ``uint8`` RGB batches with the Triton kernel."""
        return self._resize_flat is not None

    def forward(self, items: list[Payload]) -> Outcome:
        errors: list[BaseException | None] = [None] * len(items)
        images: list[Any] = []
        owners: list[int] = []  # the item of each image
        groups: dict[tuple[Any, ...], list[int]] = {}  # shape, dtype, device -> images
        for i, item in enumerate(items):
            data = item["data"]
            try:
                shape = _chw(data)
            except InputError as exc:
                errors[i] = exc
                continue
            groups.setdefault((shape, data.dtype, data.device), []).append(len(images))
            images.append(data)
            owners.append(i)
        if images and self._resize_flat is not None and _flat_resizable(list(groups)):
            table = planar_table([im.shape[-2] for im in images], [im.shape[-1] for im in images])
            flat, on_device = self._flat_images(images, table, images[0].device)
            rows = self._resize_flat(flat, on_device, flip=False)
            for k, row in enumerate(rows.split(1)):
                items[owners[k]]["result"] = row
        elif images:
            members = list(groups.values())
            rows = self._ops.resize_groups(images, members, *self.size)
            for k, row in zip(itertools.chain.from_iterable(members), rows, strict=True):
                items[owners[k]]["result"] = row
        return errors if any(e is not None for e in errors) else None


def _flat_resizable(groups: list[tuple[Any, ...]]) -> bool:
    """Whether images of these (shape, dtype, device) groups fit one Triton launch: all
    ``uint8`` with 3 channels, on one GPU."""
    import torch

    devices = {device for _, _, device in groups}
    return len(devices) == 1 and all(
        shape[0] == 3 and dtype == torch.uint8 and device.type == "cuda"
        for shape, dtype, device in groups
    )


@registered("cvtColorTensor")
class cvtColorTensor(ItemKernel):  # torchpipe spells it so
    """Swap RGB <-> BGR on the channel dimension; reads and sets ``color``."""

    device = "cuda"

    def __init__(self, color: str) -> None:
        if color not in ("rgb", "bgr"):
            raise ValueError(f"color must be 'rgb' or 'bgr', got {color!r}")
        self.color = color

    def process(self, item: Payload) -> None:
        image = _as_nchw(item["data"])
        source = item.get("color", "rgb")
        item["result"] = image if source == self.color else image.flip(1)
        item["color"] = self.color


register_kernel("CvtColorTensor", cvtColorTensor)


@registered("CropTensor")
class CropTensor(ItemKernel):
    """Crop ``[x1, y1, x2, y2]`` from the ``_box`` (or ``box``) key of the request."""

    device = "cuda"

    def process(self, item: Payload) -> None:
        image = _as_nchw(item["data"])
        box = item.get("_box", item.get("box"))
        if box is None:
            raise InputError("CropTensor needs a box [x1, y1, x2, y2] under '_box' or 'box'")
        try:
            x1, y1, x2, y2 = (int(v) for v in box)
        except (TypeError, ValueError):
            raise InputError(f"a box is [x1, y1, x2, y2], got {box!r}") from None
        height, width = image.shape[-2:]
        if not (0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height):
            raise InputError(f"box {[x1, y1, x2, y2]} is outside the {width}x{height} image")
        item["result"] = image[..., y1:y2, x1:x2]
        item["scale"] = 1.0
        item["offset"] = (-x1, -y1)


@registered("PadTensor")
class PadTensor(ItemKernel):
    """Pad right and bottom up to ``max_h`` x ``max_w`` (top-left aligned)."""

    device = "cuda"

    def __init__(self, max_h: int, max_w: int, pad_value: float = 0) -> None:
        self.max_h, self.max_w, self.pad_value = max_h, max_w, pad_value

    def process(self, item: Payload) -> None:
        import torch.nn.functional as F

        image = _as_nchw(item["data"])
        height, width = image.shape[-2:]
        if height > self.max_h or width > self.max_w:
            raise InputError(
                f"a {width}x{height} image does not fit in {self.max_w}x{self.max_h}; resize first"
            )
        padding = (0, self.max_w - width, 0, self.max_h - height)
        item["result"] = F.pad(image, padding, value=self.pad_value)
        item["scale"] = 1.0
        item["offset"] = (0, 0)


@registered("GpuTensor")
class GpuTensor(Kernel):
    """Move tensors to this instance's GPU (non-blocking from pinned memory)."""

    device = "cuda"
    max_batch = 64
    target = "cuda"

    def setup(self, ctx: InstanceContext) -> Kernel:
        copy = GpuTensor()
        copy.target = ctx.device
        return copy

    def forward(self, items: list[Payload]) -> Outcome:
        import torch

        errors: list[BaseException | None] = [None] * len(items)
        for i, item in enumerate(items):
            data = item["data"]
            if not isinstance(data, torch.Tensor):
                errors[i] = InputError(f"GpuTensor moves tensors, got {type(data).__name__}")
                continue
            item["result"] = data.to(self.target, non_blocking=True)
        return errors if any(e is not None for e in errors) else None


@registered("CpuTensor")
class CpuTensor(ItemKernel):
    """Copy a CUDA tensor (or a list of them) to the host, on this instance's stream."""

    device = "cuda"

    def process(self, item: Payload) -> None:
        import torch

        data = item["data"]
        tensors = data if isinstance(data, (list, tuple)) else [data]
        if not all(isinstance(t, torch.Tensor) and t.is_cuda for t in tensors):
            raise InputError(
                "CpuTensor copies CUDA tensors to the host; got a CPU tensor or a "
                f"{type(data).__name__}"
            )
        moved = [t.to("cpu") for t in tensors]
        item["result"] = moved if isinstance(data, (list, tuple)) else moved[0]
