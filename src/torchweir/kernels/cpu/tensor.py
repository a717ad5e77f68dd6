"""Between OpenCV arrays and torch tensors: ``Mat2Tensor`` and ``Tensor2Mat``.

torch is imported when a kernel is built or runs, not when this module is imported, so
that ``import torchweir`` stays light for graphs without tensors.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

import numpy as np

from torchweir.errors import ConfigError, InputError
from torchweir.kernels.base import InstanceContext, ItemKernel, Kernel, Payload
from torchweir.kernels.cpu.ops import as_image
from torchweir.kernels.registry import registered

if TYPE_CHECKING:
    import torch

__all__ = ["DATA_FORMATS", "Mat2Tensor", "Tensor2Mat", "resolve_device"]

DATA_FORMATS = ("nchw", "hwc")


def resolve_device(device: str) -> str:
    """``"cpu"``, or a CUDA device: torchpipe's ``"gpu"`` means ``"cuda"``.

    Raises:
        ConfigError: an unknown device, or CUDA without a CUDA build or device.
    """
    name = str(device).strip().lower()
    if name == "cpu":
        return "cpu"
    if name == "gpu":
        name = "cuda"
    if name != "cuda" and not (name.startswith("cuda:") and name[5:].isdigit()):
        raise ConfigError(
            f"device must be 'cpu', 'gpu', 'cuda' or 'cuda:N', got {device!r}", key="device"
        )
    import torch

    if not torch.cuda.is_available():
        raise ConfigError(
            f"Mat2Tensor device={device!r} needs CUDA, but torch {torch.__version__} sees no "
            "CUDA device; use device='cpu'",
            key="device",
        )
    count = torch.cuda.device_count()
    if name != "cuda" and int(name[5:]) >= count:
        raise ConfigError(f"device={device!r}, but torch sees {count} CUDA device(s)", key="device")
    return name


@registered("Mat2Tensor")
class Mat2Tensor(ItemKernel):
    """Copy an H x W x C (or H x W) array into a new ``1 x C x H x W`` (or ``H x W x C``) tensor.

    The dtype is kept (``uint8`` stays ``uint8``). The result never shares memory with
    the array, whose buffer a later step may reuse. Sets ``data_format`` as torchpipe does.

    Args:
        device: ``"cpu"`` (the default here; torchpipe's is ``"gpu"``), ``"gpu"``,
            ``"cuda"`` or ``"cuda:N"``. ``"cuda"`` without an index means the instance's
            own device.
        data_format: ``"nchw"`` (``1 x C x H x W``) or ``"hwc"``.
        pinned: put the CPU tensor in page-locked memory, so that a later
            ``.to("cuda", non_blocking=True)`` really overlaps. Ignored (an ordinary
            tensor) when torch sees no CUDA device: there is nothing to pin for.

    Raises:
        ConfigError: at construction, an unknown device or format, or CUDA without CUDA.
    """

    def __init__(
        self, device: str = "cpu", data_format: str = "nchw", pinned: bool = False
    ) -> None:
        fmt = str(data_format).strip().lower()
        if fmt not in DATA_FORMATS:
            raise ConfigError(
                f"data_format must be 'nchw' or 'hwc', got {data_format!r}", key="data_format"
            )
        self.device = resolve_device(device)
        self.data_format = fmt
        self.pinned = bool(pinned) and (self.device != "cpu" or _cuda_available())

    def __repr__(self) -> str:
        return (
            f"Mat2Tensor(device={self.device!r}, data_format={self.data_format!r}, "
            f"pinned={self.pinned})"
        )

    def setup(self, ctx: InstanceContext) -> Kernel:
        if self.device == "cuda" and ctx.device.startswith("cuda:"):
            bound = copy.copy(self)
            bound.device = ctx.device
            return bound
        return self

    def process(self, item: Payload) -> None:
        image = as_image(item["data"], "Mat2Tensor")
        item["result"] = self.convert(image)
        item["data_format"] = self.data_format

    def convert(self, image: np.ndarray[Any, np.dtype[Any]]) -> torch.Tensor:
        """A new tensor holding ``image`` in this kernel's layout, device and memory."""
        import torch

        if not image.flags.writeable or any(stride < 0 for stride in image.strides):
            # torch.from_numpy warns on read-only arrays and refuses negative strides.
            image = np.array(image)
        try:
            source = torch.from_numpy(image)
        except TypeError as exc:
            raise InputError(f"Mat2Tensor cannot hold a {image.dtype} array in a tensor") from exc
        if source.ndim == 2:
            source = source.unsqueeze(2)
        if self.data_format == "nchw":
            source = source.permute(2, 0, 1).unsqueeze(0)
        # A fresh tensor, even when ``source`` is already in this layout: the array's
        # buffer may be reused or cropped from a larger image.
        out = torch.empty(source.shape, dtype=source.dtype, pin_memory=self.pinned)
        out.copy_(source)
        if self.device != "cpu":
            # Blocking: the next step may run on another stream; pinning still speeds it up.
            return out.to(self.device)
        return out


@registered("Tensor2Mat")
class Tensor2Mat(ItemKernel):
    """Copy a tensor into a new ``uint8`` H x W x C array on the CPU.

    Accepts ``H x W x C``, ``C x H x W`` and ``1 x C x H x W`` with C in 1, 3 or 4; the
    request's ``data_format`` (set by ``Mat2Tensor``) decides a 3-D layout when present,
    else a last axis of 1, 3 or 4 means H x W x C. Floating-point values are rounded and
    clamped to [0, 255], as they would be when saving an image.
    """

    def process(self, item: Payload) -> None:
        import torch

        data = item["data"]
        if not isinstance(data, torch.Tensor):
            raise InputError(f"Tensor2Mat expects a torch.Tensor, got {type(data).__name__}")
        if data.dtype == torch.bool or data.is_complex():
            raise InputError(f"Tensor2Mat expects an integer or float tensor, got {data.dtype}")
        hwc = _as_hwc(data, item.get("data_format"))
        if hwc.is_floating_point():
            hwc = hwc.round().clamp(0, 255)
        elif hwc.dtype != torch.uint8:
            hwc = hwc.clamp(0, 255)
        out = np.empty(tuple(hwc.shape), dtype=np.uint8)
        out[...] = hwc.detach().to("cpu", torch.uint8).numpy()
        item["result"] = out


def _as_hwc(tensor: torch.Tensor, data_format: object) -> torch.Tensor:
    shape = tuple(tensor.shape)
    if tensor.ndim == 4 and shape[0] == 1 and shape[1] in (1, 3, 4):
        return tensor[0].permute(1, 2, 0)
    if tensor.ndim == 3:
        chw = shape[0] in (1, 3, 4) and (
            data_format == "nchw" or (data_format != "hwc" and shape[2] not in (1, 3, 4))
        )
        if chw:
            return tensor.permute(1, 2, 0)
        if shape[2] in (1, 3, 4):
            return tensor
    raise InputError(
        "Tensor2Mat expects H x W x C, C x H x W or 1 x C x H x W with C in (1, 3, 4), "
        f"got shape {shape}"
    )


def _cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())
