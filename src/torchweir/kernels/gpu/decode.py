"""``DecodeTensor``: JPEG bytes -> RGB ``uint8`` CUDA tensors, batched through nvJPEG.

The whole batch is decoded by one nvJPEG call, so the Python cost per image is a few
microseconds and the CPU stays free. On the torchvision path, cutting the batch's bytes,
decoding and laying out the rows is one TorchScript call (:mod:`.batch_ops`): its thread
wins the GIL back once per batch, not once per image. Two ways to reach nvJPEG's hardware
decoder:

* ``decoder = "nvjpeg"``: our own binding (:mod:`.nvjpeg`), one decoder per instance on
  the instance's stream, fed from pinned memory, with no lock shared between instances;
* ``decoder = "torchvision"``: ``torchvision.io.decode_jpeg``, which serialises every
  caller in the process behind one mutex and synchronises its stream twice per batch.

``"auto"`` (the default) takes torchvision where the process sees one GPU, and the
binding (where libnvjpeg loads and the GPU has the hardware decoder) where it sees
several: torchvision rebuilds its one decoder whenever the device changes. In the
ResNet-50 service on an H200, torchvision matched or beat the binding in both benchmark
suite runs (256 clients: 15,385 against 15,299 and 16,493 against 14,433 img/s; 10
clients: 2,794 against 2,559 and 2,929 against 2,445; README, GPU results). JPEGs the
hardware cannot decode (progressive ones, say) go through torchvision either way. Both
give the same pixels.

Headers are checked on the host first (the same checks as ``DecodeMat``): a corrupt image
then fails alone with :class:`InputError`. If nvJPEG still rejects the batch, it is decoded
image by image to find the culprit, so one bad image never fails its batch-mates.
"""

from __future__ import annotations

import ctypes
from typing import Any

from torchweir.errors import InputError
from torchweir.kernels.base import InstanceContext, Kernel, Outcome, Payload
from torchweir.kernels.cpu._formats import JpegHeader, jpeg_header, sniff
from torchweir.kernels.cpu.decode import DEFAULT_MAX_PIXELS, as_encoded_bytes
from torchweir.kernels.gpu.nvjpeg import (
    HANDLE_MODES,
    BatchDecoder,
    NvjpegError,
    NvjpegUnavailable,
)
from torchweir.kernels.registry import registered

__all__ = ["DECODERS", "DecodeTensor"]

DECODERS = ("auto", "nvjpeg", "torchvision")

#: One checked input: its index in the batch, its bytes and its frame header.
_Checked = tuple[int, bytes, JpegHeader]


@registered("DecodeTensor")
class DecodeTensor(Kernel):
    """Decode JPEG ``data`` on the GPU into a 1 x 3 x H x W (or H x W x 3) ``uint8`` tensor.

    Like ``DecodeMat`` it ignores EXIF orientation and decodes grayscale to three channels;
    it sets ``color`` to the colour order produced.

    Args:
        color: ``"rgb"`` (nvJPEG's order, torchpipe's default) or ``"bgr"``.
        data_format: ``"nchw"`` (1 x 3 x H x W) or ``"hwc"``.
        max_pixels: the largest ``width * height`` accepted (torchpipe: 5000 x 5000).
        max_batch: images decoded per nvJPEG call.
        decoder: ``"auto"``, ``"nvjpeg"`` or ``"torchvision"`` (see the module docstring).
        nvjpeg_handle: how the binding's instances on one GPU share nvJPEG: ``"own"`` (a
            handle each, the default), ``"shared"`` (one handle) or ``"serialized"`` (one
            handle, whose batched decodes take turns while everything else overlaps). In
            the ResNet-50 service on an H200, ``own`` and ``serialized`` ran at 15,299 and
            12,675 img/s in one run and at 14,433 and 14,705 in the next, although
            ``serialized`` decoded faster in threads next to a replaying model (README).

    Attributes:
        scripted: whether the torchvision path cuts, decodes and lays out a batch in one
            TorchScript call (:mod:`.batch_ops`), as it does wherever TorchScript works.
    """

    device = "cuda"

    def __init__(
        self,
        color: str = "rgb",
        data_format: str = "nchw",
        max_pixels: int = DEFAULT_MAX_PIXELS,
        max_batch: int = 64,
        decoder: str = "auto",
        nvjpeg_handle: str = "own",
    ) -> None:
        if color not in ("rgb", "bgr"):
            raise ValueError(f"color must be 'rgb' or 'bgr', got {color!r}")
        if data_format not in ("nchw", "hwc"):
            raise ValueError(f"data_format must be 'nchw' or 'hwc', got {data_format!r}")
        if max_pixels < 1 or max_batch < 1:
            raise ValueError(
                f"max_pixels and max_batch must be >= 1, got {max_pixels}, {max_batch}"
            )
        if decoder not in DECODERS:
            raise ValueError(f"decoder must be one of {DECODERS}, got {decoder!r}")
        if nvjpeg_handle not in HANDLE_MODES:
            raise ValueError(f"nvjpeg_handle must be one of {HANDLE_MODES}, got {nvjpeg_handle!r}")
        self.color = color
        self.data_format = data_format
        self.max_pixels = max_pixels
        self.max_batch = max_batch
        self.decoder = decoder
        self.nvjpeg_handle = nvjpeg_handle
        self._device: Any = None
        self._nvjpeg: BatchDecoder | None = None
        self._last: Any = None  # an event after the previous hardware batch
        self._in_flight: Any = None  # the device buffer that batch writes, kept alive
        self._staging: Any = None  # pinned host memory for the JPEG bytes
        # Imported here, on the thread that builds the graph: instances set up on their
        # own threads at once, and concurrent first imports of torchvision and torch's
        # compiler can collide ("partially initialized module").
        try:
            from torchvision.io import ImageReadMode
        except ImportError as exc:
            raise ImportError(
                "DecodeTensor needs torchvision with CUDA (nvJPEG); install torchvision, or "
                "decode on the CPU with DecodeMat"
            ) from exc
        from torchweir.kernels.gpu.batch_ops import batch_ops, compiled, decode_rows

        self._rgb = ImageReadMode.RGB.value  # three channels, from grayscale JPEGs too
        self._ops = batch_ops()
        # compiled here, on the graph's thread, and after torchvision has registered its op
        self._decode_rows, self.scripted = compiled(decode_rows)

    def setup(self, ctx: InstanceContext) -> Kernel:
        import torch

        copy = self._unset()
        copy._device = torch.device(ctx.device)
        if self.decoder == "nvjpeg" or (self.decoder == "auto" and torch.cuda.device_count() > 1):
            index = copy._device.index
            try:
                copy._nvjpeg = BatchDecoder(
                    torch.cuda.current_device() if index is None else index, self.nvjpeg_handle
                )
            except NvjpegUnavailable:
                if self.decoder == "nvjpeg":
                    raise
        return copy

    def _unset(self) -> DecodeTensor:
        """A copy of this kernel's configuration, not yet set up for an instance."""
        return DecodeTensor(
            self.color,
            self.data_format,
            self.max_pixels,
            self.max_batch,
            self.decoder,
            self.nvjpeg_handle,
        )

    @property
    def hardware(self) -> bool:
        """Whether this instance decodes through its own nvJPEG binding."""
        return self._nvjpeg is not None

    def close(self) -> None:
        if self._nvjpeg is not None:
            if self._last is not None:
                self._last.synchronize()
            self._nvjpeg.close()
            self._nvjpeg = None
            self._in_flight = self._staging = None

    def forward(self, items: list[Payload]) -> Outcome:
        errors: list[BaseException | None] = [None] * len(items)
        checked: list[_Checked] = []
        for i, item in enumerate(items):
            try:
                buf, header = self._checked(item["data"])
            except InputError as exc:
                errors[i] = exc
                continue
            checked.append((i, buf, header))
        if self._nvjpeg is not None:
            checked = self._decode_hardware(items, checked, errors)
        if checked:
            self._decode_torchvision(items, checked, errors)
        return errors if any(e is not None for e in errors) else None

    def _checked(self, data: Any) -> tuple[bytes, JpegHeader]:
        buf = as_encoded_bytes(data)
        if sniff(buf) != "jpeg":
            raise InputError(f"DecodeTensor decodes JPEG only; got {len(buf)} bytes that are not")
        header = jpeg_header(buf)
        if header.width * header.height > self.max_pixels:
            raise InputError(
                f"declared size {header.width}x{header.height} exceeds max_pixels {self.max_pixels}"
            )
        return buf, header

    def _decode_hardware(
        self, items: list[Payload], checked: list[_Checked], errors: list[BaseException | None]
    ) -> list[_Checked]:
        """Decode what the hardware supports into one device buffer; return the rest."""
        import torch

        assert self._nvjpeg is not None
        supported: list[_Checked] = []
        rest: list[_Checked] = []
        for entry in checked:
            (supported if self._nvjpeg.supports(entry[1]) else rest).append(entry)
        if not supported:
            return rest
        supported = self._layout(supported)
        if self._last is not None:  # the decoder's state is reused: the last batch must be done
            self._last.synchronize()
        heights = [h.height for _, _, h in supported]
        widths = [h.width for _, _, h in supported]
        flat = torch.empty(
            3 * sum(h * w for h, w in zip(heights, widths, strict=True)),
            dtype=torch.uint8,
            device=self._device,
        )
        address = flat.data_ptr()
        planes: list[list[tuple[int, int]]] = []
        for height, width in zip(heights, widths, strict=True):
            plane = width * height
            planes.append([(address + c * plane, width) for c in range(3)])
            address += 3 * plane
        sources = self._pinned([buf for _, buf, _ in supported])
        stream = torch.cuda.current_stream(self._device).cuda_stream
        decoded = list(range(len(supported)))
        try:
            self._nvjpeg.decode(sources, planes, self.color, stream)
        except NvjpegError:
            decoded = []
            for k, (i, _, _) in enumerate(supported):
                try:
                    self._nvjpeg.decode([sources[k]], [planes[k]], self.color, stream)
                except NvjpegError as exc:
                    errors[i] = InputError(f"nvJPEG cannot decode this image: {exc}")
                else:
                    decoded.append(k)
        self._last = torch.cuda.Event()  # type: ignore[no-untyped-call]
        self._last.record()
        self._in_flight = flat
        if len(decoded) == len(supported):
            owners, rows = self._planar_rows(flat, [i for i, _, _ in supported], heights, widths)
            self._set_rows(items, owners, rows)
        else:  # the buffer has holes where images failed
            images = self._ops.plane_views(flat, heights, widths)
            self._store(
                items, [supported[k][0] for k in decoded], [images[k] for k in decoded], False
            )
        return rest

    def _layout(self, supported: list[_Checked]) -> list[_Checked]:
        """The order in which the binding lays a batch's images out in its device buffer."""
        return supported

    def _planar_rows(
        self, flat: Any, owners: list[int], heights: list[int], widths: list[int]
    ) -> tuple[list[int], list[Any]]:
        """The rows of a batch the binding decoded into ``flat``, image ``k`` (of
        ``items[owners[k]]``) of 3 x ``heights[k]`` x ``widths[k]`` after image ``k - 1``,
        in the order :meth:`_layout` gave; and the item of each row."""
        order, rows = self._rows(self._ops.plane_views(flat, heights, widths), False)
        return [owners[k] for k in order], rows

    def _pinned(self, encoded: list[bytes]) -> list[tuple[int, int]]:
        """Copy ``encoded`` into this instance's pinned staging buffer (grown as needed,
        reused once the last batch is done); their addresses and lengths there."""
        import torch

        total = sum(len(buf) for buf in encoded)
        if self._staging is None or self._staging.numel() < total:
            size = max(total, 2 * (0 if self._staging is None else self._staging.numel()))
            self._staging = torch.empty(size, dtype=torch.uint8, pin_memory=True)
        base = self._staging.data_ptr()
        # memoryview copies keep the GIL (ctypes.memmove would let go of it, and winning it
        # back under load costs more than a 50 kB copy)
        pinned = (ctypes.c_ubyte * self._staging.numel()).from_address(base)
        staging = memoryview(pinned).cast("B")
        sources = []
        offset = 0
        for buf in encoded:
            staging[offset : offset + len(buf)] = buf
            sources.append((base + offset, len(buf)))
            offset += len(buf)
        return sources

    def _decode_torchvision(
        self, items: list[Payload], checked: list[_Checked], errors: list[BaseException | None]
    ) -> None:
        import torch

        # one host tensor for the batch, cut and decoded in one TorchScript call: each torch
        # call, and each tensor Python frees, may wait for the GIL under load (batch_ops)
        blob = torch.frombuffer(bytearray().join(buf for _, buf, _ in checked), dtype=torch.uint8)
        try:
            owners, rows = self._decode_batch(blob, checked)
        except RuntimeError:  # an image nvJPEG rejects: decode one by one to find it
            encoded = torch.split(blob, [len(buf) for _, buf, _ in checked])
            images = [
                self._decode_one(data, errors, i)
                for data, (i, _, _) in zip(encoded, checked, strict=True)
            ]
            done = [
                (i, im) for (i, _, _), im in zip(checked, images, strict=True) if im is not None
            ]
            self._store(items, [i for i, _ in done], [im for _, im in done], self._flip)
            return
        self._set_rows(items, owners, rows)

    def _decode_batch(self, blob: Any, checked: list[_Checked]) -> tuple[list[int], list[Any]]:
        """The rows of the JPEGs ``blob`` holds back to back, and the item of each row."""
        lengths = [len(buf) for _, buf, _ in checked]
        hwc = self.data_format == "hwc"
        rows = self._decode_rows(blob, lengths, self._rgb, self._device, self._flip, hwc)
        return [i for i, _, _ in checked], rows

    @property
    def _flip(self) -> bool:
        """Whether nvJPEG's RGB must be reversed into this node's colour order."""
        return self.color != "rgb"

    def _decode_one(self, data: Any, errors: list[BaseException | None], i: int) -> Any:
        from torchvision.io import ImageReadMode, decode_jpeg

        try:
            return decode_jpeg(data, mode=ImageReadMode.RGB, device=self._device)
        except RuntimeError as exc:
            errors[i] = InputError(f"nvJPEG cannot decode this image: {exc}")
            return None

    def _store(
        self, items: list[Payload], owners: list[int], images: list[Any], flip: bool
    ) -> None:
        """``images`` (3 x H x W, decoded for ``items[owners[k]]``) become their results in
        this node's layout, reversing the channel order with ``flip``: one call per batch."""
        if images:
            order, rows = self._rows(images, flip)
            self._set_rows(items, [owners[k] for k in order], rows)

    def _rows(self, images: list[Any], flip: bool) -> tuple[list[int], list[Any]]:
        """Decoded images as rows, and the index in ``images`` of each row."""
        rows = self._ops.as_rows(images, flip, self.data_format == "hwc")
        return list(range(len(images))), rows

    def _set_rows(self, items: list[Payload], owners: list[int], rows: list[Any]) -> None:
        for i, row in zip(owners, rows, strict=True):
            items[i]["result"] = row
            items[i]["color"] = self.color
