"""``DecodeMat``: encoded image bytes -> BGR ``uint8`` HWC array, with OpenCV."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from torchweir.errors import InputError
from torchweir.kernels.base import InstanceContext, ItemKernel, Kernel, Payload
from torchweir.kernels.cpu._formats import declared_size, jpeg_header, parse_formats, sniff
from torchweir.kernels.cpu.ops import Image, opencv_threads_for
from torchweir.kernels.registry import registered

__all__ = ["DEFAULT_MAX_PIXELS", "DecodeMat", "as_encoded_bytes"]

#: torchpipe's nvJPEG decoder refuses images above 5000 x 5000; the CPU path agrees.
DEFAULT_MAX_PIXELS = 5000 * 5000
_IMREAD_FLAGS = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION


@registered("DecodeMat")
class DecodeMat(ItemKernel):
    """Decode ``data`` (encoded bytes) into a BGR ``uint8`` H x W x 3 array; set ``color="bgr"``.

    Decisions, and why:

    * **JPEG only by default**, as torchpipe's ``DecodeMat``. Other formats are sniffed from
      their magic bytes and rejected with an :class:`InputError` that names the format,
      unless listed in ``formats`` (``"jpeg,png"``): a service that expects photos should
      not silently start decoding anything OpenCV can read.
    * **EXIF orientation is ignored**: pixels come out in stored order, as nvJPEG (the GPU
      ``DecodeTensor``) returns them, so the CPU and GPU paths agree on every image.
    * **Always three channels**: grayscale and CMYK JPEGs decode to 3-channel BGR, so the
      next stages see one layout.
    * **Truncated JPEGs fail**: libjpeg only warns about a cut-short file, and OpenCV
      versions differ on whether they then return the image with its missing rows grey
      (4.x, often) or ``None`` (5.0). So a JPEG must have an end-of-image marker (FF D9)
      after its image data, whichever OpenCV is installed.
    * **Size is checked before decoding** from the JPEG frame header (and PNG, GIF, BMP
      headers), so a small file that declares a huge image costs nothing; WebP and TIFF
      are checked after decoding.

    Args:
        formats: comma-separated formats to accept, among jpeg, png, webp, bmp, gif, tiff.
        max_pixels: the largest ``width * height`` accepted.

    Raises:
        ValueError: at construction, for an unknown format or ``max_pixels < 1``.
    """

    def __init__(self, formats: str = "jpeg", max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels < 1:
            raise ValueError(f"max_pixels must be an int >= 1, got {max_pixels!r}")
        self.formats = parse_formats(formats)
        self.max_pixels = max_pixels

    def __repr__(self) -> str:
        return (
            f"DecodeMat(formats={','.join(sorted(self.formats))!r}, max_pixels={self.max_pixels})"
        )

    def setup(self, ctx: InstanceContext) -> Kernel:
        opencv_threads_for(ctx)
        return self

    def process(self, item: Payload) -> None:
        item["result"] = self.decode(item["data"])
        item["color"] = "bgr"

    def decode(self, data: Any) -> Image:
        """Validate and decode one payload.

        Raises:
            InputError: the payload is not bytes, is empty, is not an accepted format, is
                truncated or too large, or OpenCV cannot decode it.
        """
        buf = as_encoded_bytes(data)
        fmt = sniff(buf)
        if fmt is None:
            head = buf[:8].hex(" ")
            raise InputError(f"unrecognised image format ({len(buf)} bytes starting {head})")
        if fmt not in self.formats:
            raise InputError(
                f"{fmt.upper()} images are not accepted (formats={','.join(sorted(self.formats))}"
                f"); add {fmt!r} to the node's formats to decode them"
            )
        if fmt == "jpeg":
            header = jpeg_header(buf)
            size: tuple[int, int] | None = (header.width, header.height)
        else:
            size = declared_size(fmt, buf)
        if size is not None:
            self._check_size(fmt, *size)
        try:
            image = cv2.imdecode(np.frombuffer(buf, dtype=np.uint8), _IMREAD_FLAGS)
        except cv2.error as exc:
            raise InputError(f"cv2.imdecode failed on this {fmt.upper()}: {exc}") from exc
        if image is None:
            raise InputError(f"cv2.imdecode could not decode this {fmt.upper()} ({len(buf)} bytes)")
        if size is None:
            self._check_size(fmt, image.shape[1], image.shape[0])
        decoded: Image = image
        return decoded

    def _check_size(self, fmt: str, width: int, height: int) -> None:
        if width * height > self.max_pixels:
            raise InputError(
                f"{fmt.upper()} image of {width}x{height} = {width * height:,} pixels exceeds "
                f"max_pixels={self.max_pixels:,}"
            )
        if width == 0 or height == 0:
            raise InputError(f"{fmt.upper()} header declares an empty image ({width}x{height})")


def as_encoded_bytes(data: Any) -> bytes:
    """The payload as ``bytes``; a copy only for mutable or array payloads.

    Raises:
        InputError: not bytes-like or a 1-D ``uint8`` array (names the type), or empty.
    """
    if isinstance(data, bytes):
        buf = data
    elif isinstance(data, (bytearray, memoryview)):
        try:
            buf = bytes(memoryview(data).cast("B"))
        except TypeError as exc:  # a non-contiguous view
            raise InputError(f"cannot read the image bytes from this memoryview: {exc}") from exc
    elif isinstance(data, np.ndarray):
        if data.dtype != np.uint8 or data.ndim != 1:
            raise InputError(
                "an encoded image array must be 1-D uint8, "
                f"got {data.dtype} of shape {tuple(data.shape)}"
            )
        buf = data.tobytes()
    else:
        raise InputError(
            f"expected encoded image bytes (bytes, bytearray, memoryview or a 1-D uint8 "
            f"array), got {type(data).__name__}"
        )
    if not buf:
        raise InputError("empty image payload (0 bytes)")
    return buf
