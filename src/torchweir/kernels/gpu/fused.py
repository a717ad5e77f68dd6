"""Fusing ``S[DecodeTensor,ResizeTensor]`` into one step, and one TorchScript call.

Chained, the two steps hand each decoded image to the resize as a Python tensor, and
freeing it afterwards is a GIL round trip per image: torch frees tensors with the GIL
released, and under load an instance thread waits to win it back (``batch_ops``). Fused,
the JPEG headers give the decoded sizes, so the resize groups are known before the
decode, and cutting, decoding and resizing the batch is one call whose only Python
objects are the resized rows. The rows equal the chain's bit for bit: the same nvJPEG
call, the same resize. Where the resize is Triton's (``ResizeTensor``'s ``resize_kernel``),
the decoded images are laid out in one flat buffer, in the same call, and the resize is one
more launch for the whole batch.

``Sequential`` applies :func:`fuse_decode_resize` to its steps. It fuses only a pair it can
reproduce exactly: NCHW rows (``ResizeTensor`` reads no HWC images), the default filter
between the steps, and the plain classes (not subclasses, whose behaviour it cannot know).
The fused step leaves the JPEG bytes in ``data``, where the chain leaves the decoded image,
so the graph builder fuses only nodes whose ``data`` nothing after them reads.
"""

from __future__ import annotations

from typing import Any

from torchweir.kernels.base import InstanceContext, Kernel
from torchweir.kernels.compose import fuse_runs
from torchweir.kernels.gpu.decode import DecodeTensor, _Checked
from torchweir.kernels.gpu.ops import FlatResizer, ResizeTensor, flat_resizer, planar_table

__all__ = ["DecodeResizeTensor", "fuse_decode_resize"]


class DecodeResizeTensor(DecodeTensor):
    """``DecodeTensor`` then ``ResizeTensor``: JPEG bytes to resized 1 x 3 x H x W rows.

    Configured by the two kernels it replaces; it batches at most the smaller of their
    ``max_batch``. Errors are the decode's: a resize of a decoded image cannot fail alone.
    """

    def __init__(self, decode: DecodeTensor, resize: ResizeTensor) -> None:
        if decode.data_format != "nchw":
            raise ValueError("only NCHW rows can be resized: ResizeTensor reads no HWC images")
        super().__init__(
            decode.color,
            decode.data_format,
            decode.max_pixels,
            min(decode.max_batch, resize.max_batch),
            decode.decoder,
            decode.nvjpeg_handle,
        )
        from torchweir.kernels.gpu.batch_ops import (
            compiled,
            decode_flat,
            decode_resized,
            planar_resized,
        )

        self.resize = resize
        self.size = resize.size
        self._resize_flat: FlatResizer | None = None
        self._decode_resized, scripted = compiled(decode_resized)
        self._decode_flat, flat_scripted = compiled(decode_flat)
        self._planar_resized, planar_scripted = compiled(planar_resized)
        self.scripted = (
            self.scripted and scripted and flat_scripted and planar_scripted and self._ops.scripted
        )

    def __repr__(self) -> str:
        height, width = self.size
        return f"DecodeResizeTensor({height}x{width}, {self.color})"

    def _unset(self) -> DecodeTensor:
        return DecodeResizeTensor(self, self.resize)

    def setup(self, ctx: InstanceContext) -> Kernel:
        copy = super().setup(ctx)
        assert isinstance(copy, DecodeResizeTensor)
        copy._resize_flat = flat_resizer(self.resize.resize_kernel, copy._device, self.size)
        return copy

    @property
    def triton(self) -> bool:
        """Whether this instance resizes with the Triton kernel (one launch per batch)."""
        return self._resize_flat is not None

    def _decode_batch(self, blob: Any, checked: list[_Checked]) -> tuple[list[int], list[Any]]:
        lengths = [len(buf) for _, buf, _ in checked]
        if self._resize_flat is not None:
            headers = [header for _, _, header in checked]
            table = planar_table([h.height for h in headers], [h.width for h in headers])
            total = table[-3] + 3 * table[-2] * table[-1]
            flat = self._decode_flat(blob, lengths, table, total, self._rgb, self._device)
            rows = self._resize_flat(*flat, flip=self._flip)  # nvJPEG gave RGB
            return [i for i, _, _ in checked], rows.split(1)
        groups = _groups([(header.height, header.width) for _, _, header in checked])
        rows = self._decode_resized(
            blob, lengths, groups, self._rgb, self._device, self._flip, *self.size
        )
        return [checked[k][0] for group in groups for k in group], rows

    def _layout(self, supported: list[_Checked]) -> list[_Checked]:
        """Images of one size next to each other, so that each size is one block of the
        binding's buffer, resized in place: no copy into a stacked batch first. (The Triton
        resize reads the images where they lie, in any order.)"""
        if self._resize_flat is not None:
            return supported
        groups = _groups([(header.height, header.width) for _, _, header in supported])
        return [supported[k] for group in groups for k in group]

    def _planar_rows(
        self, flat: Any, owners: list[int], heights: list[int], widths: list[int]
    ) -> tuple[list[int], list[Any]]:
        if self._resize_flat is not None:
            import torch

            table = torch.tensor(planar_table(heights, widths), dtype=torch.int64)
            on_device = table.to(self._device, non_blocking=True)
            # the binding decoded into this node's colour order
            return owners, self._resize_flat(flat, on_device, flip=False).split(1)
        counts: list[int] = []
        sizes: list[tuple[int, int]] = []
        for size in zip(heights, widths, strict=True):  # runs of one size, as _layout left them
            if sizes and sizes[-1] == size:
                counts[-1] += 1
            else:
                counts.append(1)
                sizes.append(size)
        run_heights, run_widths = [h for h, _ in sizes], [w for _, w in sizes]
        rows = self._planar_resized(flat, counts, run_heights, run_widths, *self.size)
        return owners, rows

    def _rows(self, images: list[Any], flip: bool) -> tuple[list[int], list[Any]]:
        groups = _groups([tuple(image.shape) for image in images])
        rows = self._ops.resized_rows(images, groups, *self.size, flip)
        return [k for group in groups for k in group], rows


def _groups(keys: list[Any]) -> list[list[int]]:
    """Indices of equal keys, grouped in order of first appearance."""
    groups: dict[Any, list[int]] = {}
    for k, key in enumerate(keys):
        groups.setdefault(key, []).append(k)
    return list(groups.values())


def fuse_decode_resize(steps: list[tuple[str, Kernel]]) -> list[tuple[str, Kernel]]:
    """Replace each ``DecodeTensor, ResizeTensor`` pair (NCHW, the default filter between
    them) with one :class:`DecodeResizeTensor`."""
    return fuse_runs(steps, 2, _fusable, lambda pair: DecodeResizeTensor(*(k for _, k in pair)))  # type: ignore[arg-type]


def _fusable(pair: list[tuple[str, Kernel]]) -> bool:
    (_, decode), (between, resize) = pair
    return (
        type(decode) is DecodeTensor
        and type(resize) is ResizeTensor
        and between in ("", "swap")
        and decode.data_format == "nchw"
    )
