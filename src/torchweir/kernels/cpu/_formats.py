"""Recognise an encoded image by its magic bytes and read its size from the header.

This runs before ``cv2.imdecode`` so that a request is rejected without decoding, and
thus without allocating, when it is not an accepted format, when it declares more pixels
than allowed, or when a JPEG is cut short (libjpeg only warns, and some OpenCV versions
then return the image with its missing rows grey).
"""

from __future__ import annotations

from typing import NamedTuple

from torchweir.errors import InputError

__all__ = ["FORMATS", "JpegHeader", "declared_size", "jpeg_header", "parse_formats", "sniff"]

#: The formats :func:`sniff` recognises, as named in ``DecodeMat(formats=...)``.
FORMATS = ("jpeg", "png", "webp", "bmp", "gif", "tiff")
_ALIASES = {"jpg": "jpeg", "tif": "tiff"}

_EOI = b"\xff\xd9"
_SOS = 0xDA
# SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC), which share the range.
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Markers without a length field: TEM and RST0..RST7.
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})


class JpegHeader(NamedTuple):
    """What the frame header (SOFn) of a JPEG declares, and where its first scan begins."""

    width: int
    height: int
    components: int
    scan_start: int


def parse_formats(text: str) -> frozenset[str]:
    """``"jpeg, png"`` -> ``{"jpeg", "png"}``; ``jpg`` and ``tif`` are aliases.

    Raises:
        ValueError: an unknown or empty format list (names it and lists the known ones).
    """
    names = [part.strip().lower() for part in str(text).split(",") if part.strip()]
    if not names:
        raise ValueError(f"formats must name at least one of {', '.join(FORMATS)}; got {text!r}")
    found = {_ALIASES.get(name, name) for name in names}
    unknown = sorted(found.difference(FORMATS))
    if unknown:
        raise ValueError(
            f"unknown image format(s) {', '.join(map(repr, unknown))} in formats={text!r}; "
            f"known: {', '.join(FORMATS)}"
        )
    return frozenset(found)


def sniff(buf: bytes) -> str | None:
    """The format whose signature ``buf`` starts with, or ``None``."""
    if buf.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if buf.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if buf.startswith(b"RIFF") and buf[8:12] == b"WEBP":
        return "webp"
    if buf.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if buf.startswith((b"II*\x00", b"MM\x00*")):
        return "tiff"
    if buf.startswith(b"BM") and len(buf) >= 26:  # "BM" alone is too weak a signature
        return "bmp"
    return None


def jpeg_header(buf: bytes) -> JpegHeader:
    """Walk the JPEG markers up to the first scan (SOS) and check that an EOI follows.

    Raises:
        InputError: the header is corrupt or cut short, there is no frame header before
            the scan, or no end-of-image marker (FF D9) follows the scan data.
    """
    size = len(buf)
    pos = 2
    frame: tuple[int, int, int] | None = None
    while True:
        pos = buf.find(b"\xff", pos)  # libjpeg also skips stray bytes between segments
        if pos < 0:
            raise InputError(f"truncated JPEG: its {size} bytes end before any image data")
        while pos < size and buf[pos] == 0xFF:  # fill bytes
            pos += 1
        if pos >= size:
            raise InputError(f"truncated JPEG: its {size} bytes end before any image data")
        marker = buf[pos]
        pos += 1
        if marker in _STANDALONE or marker == 0x00:
            continue
        if marker == 0xD9:
            raise InputError("corrupt JPEG: end-of-image marker before any image data")
        if pos + 2 > size:
            raise InputError(f"truncated JPEG: cut inside the header at byte {pos} of {size}")
        end = pos + ((buf[pos] << 8) | buf[pos + 1])
        if end < pos + 2 or end > size:
            raise InputError(
                f"truncated JPEG: segment FF {marker:02X} at byte {pos - 2} runs past the "
                f"end ({size} bytes)"
            )
        if marker in _SOF:
            if end - pos < 8:
                raise InputError(f"corrupt JPEG: frame header FF {marker:02X} too short")
            height = (buf[pos + 3] << 8) | buf[pos + 4]
            width = (buf[pos + 5] << 8) | buf[pos + 6]
            frame = (width, height, buf[pos + 7])
        elif marker == _SOS:
            if frame is None:
                raise InputError("corrupt JPEG: image data (SOS) before any frame header (SOF)")
            if buf.rfind(_EOI, end) < 0:
                raise InputError(
                    f"truncated JPEG: no end-of-image marker (FF D9) after the image data "
                    f"({size} bytes)"
                )
            return JpegHeader(*frame, scan_start=end)
        pos = end


def declared_size(fmt: str, buf: bytes) -> tuple[int, int] | None:
    """``(width, height)`` from the header of a PNG, GIF or BMP; ``None`` if unknown.

    JPEG is handled by :func:`jpeg_header`. WebP and TIFF headers are not read here:
    their decoded size is checked after decoding instead.
    """
    if fmt == "png" and len(buf) >= 24 and buf[12:16] == b"IHDR":
        return int.from_bytes(buf[16:20], "big"), int.from_bytes(buf[20:24], "big")
    if fmt == "gif" and len(buf) >= 10:
        return int.from_bytes(buf[6:8], "little"), int.from_bytes(buf[8:10], "little")
    if fmt == "bmp" and len(buf) >= 26:
        if int.from_bytes(buf[14:18], "little") == 12:  # BITMAPCOREHEADER: 16-bit sizes
            return int.from_bytes(buf[18:20], "little"), int.from_bytes(buf[20:22], "little")
        width = int.from_bytes(buf[18:22], "little", signed=True)
        height = int.from_bytes(buf[22:26], "little", signed=True)  # < 0: top-down rows
        return abs(width), abs(height)
    return None
