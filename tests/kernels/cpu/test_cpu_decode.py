from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from torchweir.data import sample_image_bytes, sample_images
from torchweir.errors import InputError
from torchweir.kernels.cpu import DecodeMat
from torchweir.kernels.cpu._formats import declared_size, jpeg_header, parse_formats, sniff

FIXTURES = Path(__file__).parent / "fixtures"
IGNORE_EXIF = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION
JPEGS = sample_image_bytes()
SMALL = JPEGS[2]  # chelsea_450x300.jpg


def cv2_decode(buf: bytes, flags: int = IGNORE_EXIF) -> Any:
    return cv2.imdecode(np.frombuffer(buf, dtype=np.uint8), flags)


def decode(data: Any, **params: Any) -> dict[str, Any]:
    item = {"data": data}
    outcome = DecodeMat.from_params(params).forward([item])
    assert outcome is None, outcome
    return item


def decode_error(data: Any, **params: Any) -> str:
    kernel = DecodeMat.from_params(params)
    item = {"data": data}
    outcome = kernel.forward([item])
    assert outcome is not None, f"expected an InputError, got a result for {data!r:.60}"
    assert isinstance(outcome[0], InputError), repr(outcome[0])
    assert "result" not in item
    return str(outcome[0])


def encode(ext: str, image: Any, *params: int) -> bytes:
    ok, buf = cv2.imencode(ext, image, list(params))
    assert ok
    return bytes(buf.tobytes())


def patch(buf: bytes, at: int, new: bytes) -> bytes:
    return buf[:at] + new + buf[at + len(new) :]


# -- the bundled photos ----------------------------------------------------------------


def test_sample_images_are_sorted_small_jpegs_of_the_size_in_their_name() -> None:
    paths = sample_images()
    assert len(paths) == 8
    assert paths == sorted(paths)
    assert [p.read_bytes() for p in paths] == JPEGS
    assert sum(map(len, JPEGS)) < 600_000
    for path, buf in zip(paths, JPEGS, strict=True):
        assert len(buf) < 100_000, path.name
        width, height = map(int, re.findall(r"(\d+)x(\d+)", path.name)[0])
        assert cv2_decode(buf).shape == (height, width, 3), path.name
    readme = (paths[0].parent / "README.md").read_text()
    assert all(p.name in readme for p in paths)


@pytest.mark.parametrize("index", range(len(JPEGS)), ids=[p.name for p in sample_images()])
def test_decode_equals_cv2_imdecode(index: int) -> None:
    buf = JPEGS[index]
    item = decode(buf)
    assert item["color"] == "bgr"
    assert item["result"].dtype == np.uint8
    assert item["result"].shape[2] == 3
    np.testing.assert_array_equal(item["result"], cv2_decode(buf))


def test_grayscale_jpeg_decodes_to_three_equal_channels() -> None:
    buf = next(b for p, b in zip(sample_images(), JPEGS, strict=True) if "gray" in p.name)
    assert jpeg_header(buf).components == 1
    image = decode(buf)["result"]
    assert image.shape == (512, 512, 3)
    np.testing.assert_array_equal(image[..., 0], cv2_decode(buf, cv2.IMREAD_GRAYSCALE))
    np.testing.assert_array_equal(image[..., 0], image[..., 2])


def test_cmyk_jpeg_decodes_to_bgr() -> None:
    buf = (FIXTURES / "cmyk_64x48.jpg").read_bytes()
    assert jpeg_header(buf).components == 4
    image = decode(buf)["result"]
    assert image.shape == (48, 64, 3)
    # The fixture is a CMYK copy of coffee_600x400.jpg[100:148, 200:264].
    source = cv2_decode(JPEGS[3])[100:148, 200:264].astype(int)
    assert np.abs(image.astype(int) - source).mean() < 4


def test_exif_orientation_is_ignored() -> None:
    orientation_6 = (
        b"MM\x00*\x00\x00\x00\x08\x00\x01"  # big-endian TIFF, one IFD entry
        b"\x01\x12\x00\x03\x00\x00\x00\x01\x00\x06\x00\x00"  # Orientation = 6 (rotate 90)
        b"\x00\x00\x00\x00"
    )
    app1 = b"\xff\xe1" + (8 + len(orientation_6)).to_bytes(2, "big") + b"Exif\x00\x00"
    rotated = SMALL[:2] + app1 + orientation_6 + SMALL[2:]
    assert cv2_decode(rotated, cv2.IMREAD_COLOR).shape == (450, 300, 3)  # cv2 honours it
    np.testing.assert_array_equal(decode(rotated)["result"], cv2_decode(SMALL))


@pytest.mark.parametrize(
    "wrap",
    [bytearray, memoryview, lambda b: np.frombuffer(b, dtype=np.uint8)],
    ids=["bytearray", "memoryview", "uint8-array"],
)
def test_bytes_like_payloads(wrap: Any) -> None:
    np.testing.assert_array_equal(decode(wrap(SMALL))["result"], cv2_decode(SMALL))


# -- bad input ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "named"),
    [
        ("/tmp/cat.jpg", "got str"),
        (None, "got NoneType"),
        (12, "got int"),
        ([255, 216], "got list"),
        (np.zeros((4, 4), dtype=np.uint8), "got uint8 of shape (4, 4)"),
        (np.zeros(4, dtype=np.float32), "got float32 of shape (4,)"),
    ],
)
def test_non_bytes_payload_names_its_type(data: Any, named: str) -> None:
    assert named in decode_error(data)


def test_empty_payload() -> None:
    assert decode_error(b"") == "empty image payload (0 bytes)"


def test_random_bytes_are_an_unknown_format() -> None:
    noise = np.random.default_rng(0).bytes(1000)
    message = decode_error(noise)
    assert message.startswith("unrecognised image format (1000 bytes starting ")
    assert noise[:2].hex() in message.replace(" ", "")


@pytest.mark.parametrize("cut", [3, 20, 400, 5000, len(SMALL) // 2, len(SMALL) - 1])
def test_truncated_jpeg(cut: int) -> None:
    assert "truncated JPEG" in decode_error(SMALL[:cut])


def test_truncated_progressive_jpeg() -> None:
    rocket = JPEGS[-1]
    assert rocket[jpeg_header(rocket).scan_start :].count(b"\xff\xda") > 1  # progressive
    assert "truncated JPEG" in decode_error(rocket[: len(rocket) * 3 // 4])


def test_trailing_bytes_after_the_end_marker_are_fine() -> None:
    np.testing.assert_array_equal(decode(SMALL + b"\x00" * 64)["result"], cv2_decode(SMALL))


def test_declared_jpeg_size_is_checked_before_decoding() -> None:
    sof = SMALL.index(b"\xff\xc0")
    huge = patch(SMALL, sof + 5, (6000).to_bytes(2, "big") + (7000).to_bytes(2, "big"))
    assert jpeg_header(huge)[:2] == (7000, 6000)
    message = decode_error(huge)
    assert "7000x6000 = 42,000,000 pixels exceeds max_pixels=25,000,000" in message


def test_max_pixels_parameter() -> None:
    assert "450x300 = 135,000 pixels exceeds max_pixels=100,000" in decode_error(
        SMALL, max_pixels="100000"
    )
    assert decode(SMALL, max_pixels=135_000)["result"].shape == (300, 450, 3)


def test_declared_png_size_is_checked_before_decoding() -> None:
    png = encode(".png", np.zeros((4, 4, 3), dtype=np.uint8))
    huge = patch(png, 16, (10_000).to_bytes(4, "big") + (9_000).to_bytes(4, "big"))
    assert declared_size("png", huge) == (10_000, 9_000)
    assert "PNG image of 10000x9000" in decode_error(huge, formats="jpeg,png")


def test_undecodable_jpeg_fails_when_cv2_returns_none() -> None:
    sof = SMALL.index(b"\xff\xc0")
    bogus = patch(SMALL, sof + 9, b"\x02")  # two colour components: no such colour space
    assert cv2_decode(bogus) is None
    assert decode_error(bogus) == f"cv2.imdecode could not decode this JPEG ({len(SMALL)} bytes)"


def test_no_frame_header() -> None:
    assert "before any frame header" in decode_error(b"\xff\xd8\xff\xda\x00\x02\x00\xff\xd9")


# -- other formats ---------------------------------------------------------------------


IMAGE = cv2_decode(SMALL)[:48, :64].copy()
OTHER = {
    "png": encode(".png", IMAGE),
    "webp": encode(".webp", IMAGE, cv2.IMWRITE_WEBP_QUALITY, 101),  # lossless
    "bmp": encode(".bmp", IMAGE),
    "gif": encode(".gif", IMAGE),
    "tiff": encode(".tiff", IMAGE),
}


@pytest.mark.parametrize("fmt", sorted(OTHER))
def test_other_formats_are_rejected_by_default_and_named(fmt: str) -> None:
    assert sniff(OTHER[fmt]) == fmt
    message = decode_error(OTHER[fmt])
    assert message.startswith(f"{fmt.upper()} images are not accepted (formats=jpeg)")


@pytest.mark.parametrize("fmt", sorted(OTHER))
def test_other_formats_decode_when_listed(fmt: str) -> None:
    item = decode(OTHER[fmt], formats=f"jpg, {fmt}")
    np.testing.assert_array_equal(item["result"], cv2_decode(OTHER[fmt]))
    if fmt != "gif":  # a GIF has a palette
        np.testing.assert_array_equal(item["result"], IMAGE)
    assert "exceeds max_pixels=100" in decode_error(OTHER[fmt], formats=fmt, max_pixels=100)


def test_declared_sizes_of_headers() -> None:
    for fmt in ("png", "gif", "bmp"):
        assert declared_size(fmt, OTHER[fmt]) == (64, 48)
    for buf in JPEGS:
        header = jpeg_header(buf)
        assert cv2_decode(buf).shape[:2] == (header.height, header.width)


def test_formats_parameter_is_validated() -> None:
    assert parse_formats(" JPG ,Png,tif") == {"jpeg", "png", "tiff"}
    with pytest.raises(
        ValueError, match=r"unknown image format\(s\) 'heic' in formats='jpeg,heic'"
    ):
        DecodeMat(formats="jpeg,heic")
    with pytest.raises(ValueError, match="formats must name at least one"):
        DecodeMat(formats=" , ")
    with pytest.raises(ValueError, match="max_pixels must be an int >= 1, got 0"):
        DecodeMat(max_pixels=0)


def test_bad_items_fail_alone_in_a_batch() -> None:
    items: list[dict[str, Any]] = [{"data": SMALL}, {"data": b"junk"}, {"data": JPEGS[0]}]
    outcome = DecodeMat().forward(items)
    assert outcome is not None
    assert [type(e) for e in outcome] == [type(None), InputError, type(None)]
    assert items[0]["result"].shape == (300, 450, 3)
    assert items[2]["result"].shape == (500, 375, 3)
