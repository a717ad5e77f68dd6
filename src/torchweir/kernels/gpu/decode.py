"""``DecodeTensor``: JPEG bytes -> RGB ``uint8`` CUDA tensors, batched through nvJPEG.

One ``torchvision.io.decode_jpeg(list, device="cuda")`` call decodes the whole batch, so
the Python cost per image is a few microseconds and the CPU stays free. Headers are
checked on the host first (the same checks as ``DecodeMat``): a corrupt image then fails
alone with :class:`InputError`. If nvJPEG still rejects the batch, it is decoded image by
image to find the culprit, so one bad image never fails its batch-mates.
"""

from __future__ import annotations

from typing import Any

from torchweir.errors import InputError
from torchweir.kernels.base import InstanceContext, Kernel, Outcome, Payload
from torchweir.kernels.cpu._formats import jpeg_header, sniff
from torchweir.kernels.cpu.decode import DEFAULT_MAX_PIXELS, as_encoded_bytes
from torchweir.kernels.registry import registered

__all__ = ["DecodeTensor"]


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
    """

    device = "cuda"

    def __init__(
        self,
        color: str = "rgb",
        data_format: str = "nchw",
        max_pixels: int = DEFAULT_MAX_PIXELS,
        max_batch: int = 64,
    ) -> None:
        if color not in ("rgb", "bgr"):
            raise ValueError(f"color must be 'rgb' or 'bgr', got {color!r}")
        if data_format not in ("nchw", "hwc"):
            raise ValueError(f"data_format must be 'nchw' or 'hwc', got {data_format!r}")
        if max_pixels < 1 or max_batch < 1:
            raise ValueError(
                f"max_pixels and max_batch must be >= 1, got {max_pixels}, {max_batch}"
            )
        self.color = color
        self.data_format = data_format
        self.max_pixels = max_pixels
        self.max_batch = max_batch
        self._device: Any = None
        # Imported here, on the thread that builds the graph: instances set up on their
        # own threads at once, and concurrent first imports of torchvision and torch's
        # compiler can collide ("partially initialized module").
        try:
            import torchvision.io  # noqa: F401
        except ImportError as exc:
            raise ImportError(
                "DecodeTensor needs torchvision with CUDA (nvJPEG); install torchvision, or "
                "decode on the CPU with DecodeMat"
            ) from exc

    def setup(self, ctx: InstanceContext) -> Kernel:
        import torch

        copy = DecodeTensor(self.color, self.data_format, self.max_pixels, self.max_batch)
        copy._device = torch.device(ctx.device)
        return copy

    def forward(self, items: list[Payload]) -> Outcome:
        import torch
        from torchvision.io import ImageReadMode, decode_jpeg

        errors: list[BaseException | None] = [None] * len(items)
        encoded: list[Any] = []
        where: list[int] = []
        for i, item in enumerate(items):
            try:
                buf = self._checked(item["data"])
            except InputError as exc:
                errors[i] = exc
                continue
            encoded.append(torch.frombuffer(bytearray(buf), dtype=torch.uint8))
            where.append(i)
        if encoded:
            try:
                images = decode_jpeg(encoded, mode=ImageReadMode.RGB, device=self._device)
            except RuntimeError:
                images = [
                    self._decode_one(data, errors, i)
                    for data, i in zip(encoded, where, strict=True)
                ]
            for image, i in zip(images, where, strict=True):
                if image is not None:
                    self._store(items[i], image)
        return errors if any(e is not None for e in errors) else None

    def _checked(self, data: Any) -> bytes:
        buf = as_encoded_bytes(data)
        if sniff(buf) != "jpeg":
            raise InputError(f"DecodeTensor decodes JPEG only; got {len(buf)} bytes that are not")
        header = jpeg_header(buf)
        if header.width * header.height > self.max_pixels:
            raise InputError(
                f"declared size {header.width}x{header.height} exceeds max_pixels {self.max_pixels}"
            )
        return buf

    def _decode_one(self, data: Any, errors: list[BaseException | None], i: int) -> Any:
        from torchvision.io import ImageReadMode, decode_jpeg

        try:
            return decode_jpeg(data, mode=ImageReadMode.RGB, device=self._device)
        except RuntimeError as exc:
            errors[i] = InputError(f"nvJPEG cannot decode this image: {exc}")
            return None

    def _store(self, item: Payload, image: Any) -> None:
        if self.color == "bgr":
            image = image.flip(0)
        item["result"] = image.permute(1, 2, 0) if self.data_format == "hwc" else image[None]
        item["color"] = self.color
