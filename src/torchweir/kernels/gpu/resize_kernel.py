"""``ResizeTensor``'s bilinear resize of a batch of ``uint8`` images as one Triton launch.

With torch, resizing a batch is five kernels per image size: stack the images, convert
them to float32, interpolate, round, convert back to ``uint8``. Beside a model that fills
the GPU, those small kernels queue for SMs, and the float32 copies are four times the
images' bytes: in the ResNet-50 service they took 7.8-8.7 µs of kernel time per image,
twice nvJPEG's own kernels (``benchmarks/results/h200-2026-11-21l``). Here one kernel
reads each output pixel's four source pixels straight from the ``uint8`` images, which lie
one after another in one flat buffer, and writes the ``uint8`` rows. On batches of up to 64
sizes, the service's kernels in plain threads ran 1.31 times as fast with it; on the
harness's batches of 8 sizes, the service did not change (``h200-2026-11-21o``).

It computes what ``F.interpolate(mode="bilinear", align_corners=False, antialias=False)``
computes in float32 (PyTorch's CUDA kernel, step by step), then rounds half to even as
``round_`` does. Where two compilers order a multiply-add differently a pixel can differ
by one; everything else is equal.

This module imports Triton at import time; callers import it lazily, and where Triton is
missing (CPU machines) the resize runs on torch.
"""

from __future__ import annotations

import threading
from typing import Any

import torch
import triton
import triton.language as tl
from triton.language.extra import libdevice

from torchweir.kernels.gpu.ops import planar_table

__all__ = ["resize_flat", "warm_up"]

_BLOCK = 512


@triton.jit
def _bilinear_u8(
    src,
    meta,
    out,
    OUT_H: tl.constexpr,
    OUT_W: tl.constexpr,
    FLIP: tl.constexpr,
    BLOCK: tl.constexpr,
):
    """Output pixels ``BLOCK * pid(0) ...`` of image ``pid(1)``, all three channels."""
    image = tl.program_id(1)
    offset = tl.load(meta + 3 * image)  # int64: a batch's buffer can pass 2**31 bytes
    height = tl.load(meta + 3 * image + 1).to(tl.int32)
    width = tl.load(meta + 3 * image + 2).to(tl.int32)
    pixel = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    inside = pixel < OUT_H * OUT_W
    out_y = pixel // OUT_W
    out_x = pixel % OUT_W
    # area_pixel_compute_scale and area_pixel_compute_source_index, in float32
    scale_h = libdevice.div_rn(height.to(tl.float32), tl.cast(OUT_H, tl.float32))
    scale_w = libdevice.div_rn(width.to(tl.float32), tl.cast(OUT_W, tl.float32))
    src_y = tl.maximum(scale_h * (out_y.to(tl.float32) + 0.5) - 0.5, 0.0)
    src_x = tl.maximum(scale_w * (out_x.to(tl.float32) + 0.5) - 0.5, 0.0)
    y0 = src_y.to(tl.int32)  # truncation: src_y >= 0
    x0 = src_x.to(tl.int32)
    dy = tl.where(y0 < height - 1, 1, 0)
    dx = tl.where(x0 < width - 1, 1, 0)
    h1 = src_y - y0.to(tl.float32)
    h0 = 1.0 - h1
    w1 = src_x - x0.to(tl.float32)
    w0 = 1.0 - w1
    plane = height * width
    top = y0 * width + x0
    bottom = top + dy * width
    base = src + offset
    for channel in tl.static_range(3):
        source = base + (2 - channel if FLIP else channel) * plane
        p00 = tl.load(source + top, mask=inside, other=0).to(tl.float32)
        p01 = tl.load(source + top + dx, mask=inside, other=0).to(tl.float32)
        p10 = tl.load(source + bottom, mask=inside, other=0).to(tl.float32)
        p11 = tl.load(source + bottom + dx, mask=inside, other=0).to(tl.float32)
        value = h0 * (w0 * p00 + w1 * p01) + h1 * (w0 * p10 + w1 * p11)
        rounded = libdevice.rint(value)  # half to even, as torch.round
        target = out + (image.to(tl.int64) * 3 + channel) * (OUT_H * OUT_W) + pixel
        tl.store(target, rounded.to(tl.uint8), mask=inside)


def resize_flat(
    flat: torch.Tensor, table: torch.Tensor, height: int, width: int, flip: bool
) -> torch.Tensor:
    """The images ``table`` (from :func:`.ops.planar_table`, int64 on ``flat``'s device)
    places in ``flat`` (``uint8``), resized to N x 3 x ``height`` x ``width`` ``uint8``,
    channels reversed with ``flip``. Launched on the current stream."""
    count = table.numel() // 3
    out = torch.empty((count, 3, height, width), dtype=torch.uint8, device=flat.device)
    if count:
        grid = (triton.cdiv(height * width, _BLOCK), count)
        _bilinear_u8[grid](flat, table, out, height, width, flip, _BLOCK)
    return out


_warm: set[tuple[Any, int, int, bool]] = set()
_lock = threading.Lock()


def warm_up(device: torch.device, height: int, width: int, flip: bool) -> None:
    """Compile the kernel for one output size, once per process and device (Triton caches
    the binary on disk too), so that no batch pays for it. Concurrent first launches of one
    Triton kernel from several threads can compile it twice: instances call this under a
    lock as they set up."""
    key = (device, height, width, flip)
    with _lock:
        if key in _warm:
            return
        stream = torch.cuda.Stream(device)  # type: ignore[no-untyped-call]
        with torch.cuda.stream(stream):  # whoever calls, not on the default stream
            flat = torch.zeros(3 * 4 * 4, dtype=torch.uint8, device=device)
            table = torch.tensor(planar_table([4], [4]), dtype=torch.int64, device=device)
            resize_flat(flat, table, height, width, flip)
        stream.synchronize()
        _warm.add(key)
