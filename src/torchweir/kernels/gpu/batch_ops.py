"""The GPU kernels' per-batch tensor work, each function one TorchScript call.

Every torch call made from Python lets go of the GIL and has to win it back. Beside a
thread busy in Python (the event loop, another instance), winning it back can take a
whole switch interval: on an H200 under load, ``x[None]`` on a CUDA tensor went from 2 to
113 µs and ``F.interpolate`` from 11 to 757 µs (``benchmarks/gil_release_probe.py``). A
kernel that makes a call per image per op pays that per image: in the ResNet-50 service
the resize of a 64-image batch took 3.3 ms against 1.3 ms in plain threads
(``benchmarks/results/h200-2026-11-21i``). A TorchScript function runs its whole body in
C++ with the GIL released, so a batch pays the round trip once. Freeing a tensor that
Python holds is a round trip too (torch frees it with the GIL released), so the functions
return only the tensors a kernel hands on.

``torch.jit.script`` is deprecated (torch 2.13 warns) and has no successor for this:
``torch.compile``'s output is driven from Python. Where scripting is gone or fails, the
same functions run as plain Python, with the same results and one GIL round trip per op.
Scripted functions run unoptimised: the optimising executor would specialise on each
batch's shapes and fuse the rounding, for no gain here.

This module imports torch; the kernels import it lazily.
"""

import logging
import threading
import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F

__all__ = [
    "BatchOps",
    "as_rows",
    "batch_ops",
    "compiled",
    "decode_flat",
    "decode_resized",
    "decode_rows",
    "flat_images",
    "planar_resized",
    "plane_views",
    "resize_groups",
    "resized_rows",
]

_log = logging.getLogger("torchweir.kernels")


def resize_groups(
    images: list[torch.Tensor], groups: list[list[int]], height: int, width: int
) -> list[torch.Tensor]:
    """Bilinear resize (half-pixel centres, no antialias: OpenCV's ``INTER_LINEAR``).

    ``images`` are C x H x W or 1 x C x H x W; each group lists the indices of images of
    one shape, dtype and device, resized with one stacked ``interpolate``. Returns
    1 x C x ``height`` x ``width`` rows in group order. ``uint8`` stays ``uint8``, rounded.
    """
    rows: list[torch.Tensor] = []
    for members in groups:
        stacked = torch.cat(
            [images[i] if images[i].dim() == 4 else images[i].unsqueeze(0) for i in members]
        )
        rows.extend(torch.split(_resized(stacked, height, width), 1))
    return rows


def planar_resized(
    flat: torch.Tensor,
    counts: list[int],
    heights: list[int],
    widths: list[int],
    height: int,
    width: int,
) -> list[torch.Tensor]:
    """Rows of ``height`` x ``width``, resized as :func:`resize_groups` does, from ``uint8``
    planar images that lie in ``flat`` size by size: first ``counts[0]`` images of 3 x
    ``heights[0]`` x ``widths[0]``, and so on. Each run is resized where it lies."""
    rows: list[torch.Tensor] = []
    offset = 0
    for g in range(len(counts)):
        size = counts[g] * 3 * heights[g] * widths[g]
        run = flat.narrow(0, offset, size).view(counts[g], 3, heights[g], widths[g])
        rows.extend(torch.split(_resized(run, height, width), 1))
        offset += size
    return rows


def _resized(stacked: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """N x C x H x W bilinear to ``height`` x ``width``; ``uint8`` stays ``uint8``, rounded."""
    out = F.interpolate(
        stacked.float(),
        size=[height, width],
        mode="bilinear",
        align_corners=False,
        antialias=False,
    )
    if stacked.dtype == torch.uint8:  # bilinear weights are convex: no clamp needed
        out = out.round_().to(torch.uint8)
    return out


def resized_rows(
    images: list[torch.Tensor], groups: list[list[int]], height: int, width: int, flip: bool
) -> list[torch.Tensor]:
    """:func:`resize_groups`, then the channel order reversed with ``flip`` (a resize
    treats each channel alone, so the order of the two does not matter)."""
    rows = resize_groups(images, groups, height, width)
    return as_rows(rows, flip, False) if flip else rows


def as_rows(images: list[torch.Tensor], flip: bool, hwc: bool) -> list[torch.Tensor]:
    """Decoded 3 x H x W (or 1 x 3 x H x W) images as a node's rows: 1 x 3 x H x W, or
    H x W x 3 views with ``hwc``; the channel order reversed with ``flip``."""
    rows: list[torch.Tensor] = []
    for image in images:
        if image.dim() == 3:
            image = image.unsqueeze(0)
        if flip:
            image = image.flip(1)
        rows.append(image[0].permute(1, 2, 0) if hwc else image)
    return rows


def plane_views(flat: torch.Tensor, heights: list[int], widths: list[int]) -> list[torch.Tensor]:
    """``flat`` cut into consecutive 3 x H x W planar images of the given sizes."""
    sizes = [3 * heights[k] * widths[k] for k in range(len(heights))]
    chunks = torch.split(flat, sizes)
    return [chunks[k].view(3, heights[k], widths[k]) for k in range(len(sizes))]


def decode_rows(
    blob: torch.Tensor, lengths: list[int], mode: int, device: torch.device, flip: bool, hwc: bool
) -> list[torch.Tensor]:
    """JPEGs cut from one host ``blob`` and decoded on ``device`` by torchvision's nvJPEG
    op, as :func:`as_rows` lays them out. Only the rows become Python objects: freeing a
    tensor Python holds is a GIL round trip too (torch frees it with the GIL released),
    so the per-image byte views and decoded images stay inside."""
    encoded = torch.split(blob, lengths)
    images = torch.ops.image.decode_jpegs_cuda(encoded, mode, device)
    return as_rows(images, flip, hwc)


def decode_resized(
    blob: torch.Tensor,
    lengths: list[int],
    groups: list[list[int]],
    mode: int,
    device: torch.device,
    flip: bool,
    height: int,
    width: int,
) -> list[torch.Tensor]:
    """:func:`decode_rows` and :func:`resized_rows` in one call: ``S[DecodeTensor,
    ResizeTensor]`` fused. ``groups`` come from the JPEG headers, which give the decoded
    sizes, so the decoded images never become Python objects. Rows come in group order."""
    encoded = torch.split(blob, lengths)
    images = torch.ops.image.decode_jpegs_cuda(encoded, mode, device)
    return resized_rows(images, groups, height, width, flip)


def flat_images(
    images: list[torch.Tensor], table: list[int], device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """``images`` (C x H x W or 1 x C x H x W) one after another in one flat tensor, and
    ``table`` (their places there, ``ops.planar_table``) as an int64 tensor on ``device``:
    what the Triton resize reads."""
    flat = torch.cat([image.reshape(-1) for image in images])
    return flat, torch.tensor(table, dtype=torch.int64).to(device, non_blocking=True)


def decode_flat(
    blob: torch.Tensor,
    lengths: list[int],
    table: list[int],
    total: int,
    mode: int,
    device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor]:
    """JPEGs cut from one host ``blob``, decoded on ``device`` by torchvision's nvJPEG op
    and laid out as :func:`flat_images` does, for the Triton resize. ``table`` comes from
    the JPEG headers; if the decoded images hold other than ``total`` bytes, it raises
    rather than let the kernel read past them."""
    encoded = torch.split(blob, lengths)
    images = torch.ops.image.decode_jpegs_cuda(encoded, mode, device)
    flat, on_device = flat_images(images, table, device)
    if flat.numel() != total:
        raise RuntimeError("decoded images differ in size from their JPEG headers")
    return flat, on_device


class BatchOps(NamedTuple):
    """The functions as the kernels call them."""

    resize_groups: Callable[..., list[torch.Tensor]]
    resized_rows: Callable[..., list[torch.Tensor]]
    as_rows: Callable[..., list[torch.Tensor]]
    plane_views: Callable[..., list[torch.Tensor]]
    #: Whether all of them run as TorchScript (False: as Python, where scripting failed).
    scripted: bool


def batch_ops() -> BatchOps:
    """The functions compiled by TorchScript, once per process (the first call takes
    about a tenth of a second: kernels call it while the graph is built)."""
    (resize, ok1), (resized, ok2), (rows, ok3), (views, ok4) = (
        compiled(fn) for fn in (resize_groups, resized_rows, as_rows, plane_views)
    )
    return BatchOps(resize, resized, rows, views, scripted=ok1 and ok2 and ok3 and ok4)


_lock = threading.Lock()
_compiled: dict[Callable[..., Any], tuple[Callable[..., Any], bool]] = {}


def compiled(fn: Callable[..., Any]) -> tuple[Callable[..., Any], bool]:
    """``fn`` compiled by TorchScript once per process, and whether that worked.

    :func:`decode_rows` and :func:`decode_resized` compile only once torchvision has
    registered its ops.
    """
    with _lock:
        if fn not in _compiled:
            _compiled[fn] = _scripted(fn)
        return _compiled[fn]


def _scripted(fn: Callable[..., Any]) -> tuple[Callable[..., Any], bool]:
    """``fn`` compiled by TorchScript, or ``fn`` itself (and False) where that fails."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", r".*torch\.jit\.script.*deprecated", DeprecationWarning)
        try:
            script = torch.jit.script(fn)
        except Exception as exc:  # any failure leaves the eager function, which is correct
            _log.warning(
                "TorchScript cannot compile %s (%s: %s); GPU kernels run it as Python, "
                "one GIL round trip per tensor op",
                fn.__name__,
                type(exc).__name__,
                exc,
            )
            return fn, False

    def unoptimised(*args: Any) -> Any:
        with torch.jit.optimized_execution(False):  # type: ignore[attr-defined]
            return script(*args)  # the flag is per thread

    return unoptimised, True
