from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import pytest

from torchweir.errors import InputError
from torchweir.kernels import ItemKernel
from torchweir.kernels.cpu import CropMat, CvtColorMat, LetterBoxMat, ResizeMat, ResizePadMat
from torchweir.kernels.registry import create_kernel

RNG = np.random.default_rng(7)
IMAGE = RNG.integers(0, 256, (300, 450, 3), dtype=np.uint8)  # H x W x C, BGR


def run(kernel: ItemKernel, data: Any, **keys: Any) -> dict[str, Any]:
    item = {"data": data, **keys}
    outcome = kernel.forward([item])
    assert outcome is None, outcome
    return item


def error(kernel: ItemKernel, data: Any, **keys: Any) -> str:
    item = {"data": data, **keys}
    outcome = kernel.forward([item])
    assert outcome is not None, "expected an InputError"
    assert isinstance(outcome[0], InputError), repr(outcome[0])
    assert "result" not in item
    return str(outcome[0])


def to_original(xy: tuple[float, float], item: dict[str, Any]) -> tuple[float, float]:
    """The documented convention: original_xy = (xy - offset) / scale."""
    (x, y), (dx, dy), scale = xy, item["offset"], item["scale"]
    return (x - dx) / scale, (y - dy) / scale


# -- ResizeMat -------------------------------------------------------------------------


def test_resize_equals_cv2_bilinear() -> None:
    item = run(ResizeMat(224, 200), IMAGE)
    expected = cv2.resize(IMAGE, (200, 224), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_array_equal(item["result"], expected)
    assert item["result"].shape == (224, 200, 3)


def test_resize_params_coerce_from_strings() -> None:
    kernel = create_kernel("ResizeMat", {"resize_h": "224", "resize_w": "100", "color": "rgb"})
    assert isinstance(kernel, ResizeMat)
    assert (kernel.resize_h, kernel.resize_w) == (224, 100)


@pytest.mark.parametrize(("h", "w", "bad"), [(0, 10, "resize_h"), (10, 1 << 21, "resize_w")])
def test_resize_sizes_are_validated(h: int, w: int, bad: str) -> None:
    with pytest.raises(ValueError, match=rf"{bad} must be an int in \[1, 1048576\], got"):
        ResizeMat(h, w)


def test_resize_keeps_gray_layouts() -> None:
    gray = IMAGE[..., 0].copy()
    assert run(ResizeMat(10, 20), gray)["result"].shape == (10, 20)
    assert run(ResizeMat(10, 20), gray[..., None])["result"].shape == (10, 20, 1)


@pytest.mark.parametrize(
    ("data", "named"),
    [
        (b"\xff\xd8", "got bytes"),
        ([[1, 2]], "got list"),
        (np.zeros(5, dtype=np.uint8), "got shape (5,)"),
        (np.zeros((0, 4, 3), dtype=np.uint8), "got shape (0, 4, 3)"),
        (np.zeros((2, 2, 2, 2), dtype=np.uint8), "got shape (2, 2, 2, 2)"),
    ],
)
def test_resize_rejects_non_images(data: Any, named: str) -> None:
    assert named in error(ResizeMat(8, 8), data)


# -- CvtColorMat -----------------------------------------------------------------------


def test_cvtcolor_swaps_bgr_and_rgb() -> None:
    item = run(CvtColorMat("rgb"), IMAGE, color="bgr")
    np.testing.assert_array_equal(item["result"], IMAGE[..., ::-1])
    assert item["color"] == "rgb"
    back = run(CvtColorMat("BGR"), item["result"], color="rgb")
    np.testing.assert_array_equal(back["result"], IMAGE)
    assert back["color"] == "bgr"


def test_cvtcolor_same_colour_returns_data_itself() -> None:
    assert run(CvtColorMat("bgr"), IMAGE, color="bgr")["result"] is IMAGE
    assert run(CvtColorMat("bgr"), IMAGE)["result"] is IMAGE  # no color: BGR assumed
    np.testing.assert_array_equal(run(CvtColorMat("rgb"), IMAGE)["result"], IMAGE[..., ::-1])


def test_cvtcolor_errors() -> None:
    with pytest.raises(ValueError, match="color must be 'rgb' or 'bgr', got 'hsv'"):
        CvtColorMat("hsv")
    four = np.zeros((4, 4, 4), dtype=np.uint8)
    assert "H x W x 3 images, got shape (4, 4, 4)" in error(CvtColorMat("rgb"), four)
    assert "color must be 'rgb' or 'bgr', got 'gray'" in error(
        CvtColorMat("rgb"), IMAGE, color="gray"
    )


def test_both_spellings_are_registered() -> None:
    for name in ("cvtColorMat", "CvtColorMat"):
        kernel = create_kernel(name, {"color": "rgb", "resize_h": 1})
        assert isinstance(kernel, CvtColorMat)
        assert kernel.color == "rgb"


# -- ResizePadMat ----------------------------------------------------------------------


def test_resize_pad_top_left_and_pads_right_bottom() -> None:
    item = run(ResizePadMat(224, 224, pad_value="1,2,3"), IMAGE)
    # scale = min(224/300, 224/450) = 224/450; height = round(300 * 224/450) = 149
    assert item["scale"] == pytest.approx(224 / 450)
    assert item["offset"] == (0, 0)
    out = item["result"]
    assert out.shape == (224, 224, 3)
    resized = cv2.resize(IMAGE, (224, 149), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_array_equal(out[:149], resized)
    assert (out[149:] == np.array([1, 2, 3], dtype=np.uint8)).all()


def test_resize_pad_rounds_half_up_like_torchpipe() -> None:
    # 5 x 6 into 3 x 3: scale 0.5, 5 rows -> 2.5 -> 3 (rounding half to even would give 2)
    out = run(ResizePadMat(3, 3, pad_value=0), np.full((5, 6, 3), 200, np.uint8))["result"]
    assert (out == 200).all()


def test_resize_pad_of_gray_and_upscale() -> None:
    gray = IMAGE[:30, :40, 0].copy()
    item = run(ResizePadMat(100, 100), gray)
    assert item["result"].shape == (100, 100)
    assert item["scale"] == 2.5
    np.testing.assert_array_equal(item["result"][:75], cv2.resize(gray, (100, 75)))
    assert (item["result"][75:] == 0).all()


@pytest.mark.parametrize("value", ["1,2", "256", -1, "a,b,c", "1,2,3,4"])
def test_pad_value_is_validated(value: Any) -> None:
    with pytest.raises(ValueError, match=r"pad_value must be one or three integers in \[0, 255\]"):
        ResizePadMat(8, 8, pad_value=value)


# -- LetterBoxMat ----------------------------------------------------------------------


def test_letterbox_centres_and_pads_with_114() -> None:
    item = run(LetterBoxMat(320, 320), IMAGE)
    # scale = 320/450; size 320 x round(300 * 320/450) = 213; pad 107 rows: 53 top, 54 bottom
    assert item["scale"] == pytest.approx(320 / 450)
    assert item["offset"] == (0, 53)
    out = item["result"]
    assert out.shape == (320, 320, 3)
    resized = cv2.resize(IMAGE, (320, 213), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_array_equal(out[53:266], resized)
    assert (out[:53] == 114).all()
    assert (out[266:] == 114).all()


def test_letterbox_pads_columns_of_a_portrait_image() -> None:
    portrait = IMAGE.transpose(1, 0, 2).copy()  # 450 x 300
    kernel = LetterBoxMat.from_params({"resize_h": "100", "resize_w": "101", "pad_val": "7,8,9"})
    item = run(kernel, portrait)
    assert item["offset"] == ((101 - 67) // 2, 0)
    assert (item["result"][:, :17] == np.array([7, 8, 9], np.uint8)).all()
    assert (item["result"][:, 17 + 67 :] == np.array([7, 8, 9], np.uint8)).all()


def test_letterbox_takes_torchpipe_v1_pad_val() -> None:
    assert LetterBoxMat(8, 8, pad_val=0).pad_value == (0, 0, 0, 0)
    assert LetterBoxMat(8, 8).pad_value == (114, 114, 114, 114)


# -- CropMat ---------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["_box", "BOX", "box"])
def test_crop_reads_the_box_and_returns_a_view(key: str) -> None:
    item = run(CropMat(), IMAGE, **{key: [10, 20, 110, 70]})
    np.testing.assert_array_equal(item["result"], IMAGE[20:70, 10:110])
    assert np.shares_memory(item["result"], IMAGE)
    assert item["scale"] == 1.0
    assert item["offset"] == (-10, -20)


def test_crop_accepts_numpy_integers_and_prefers_the_v0_key() -> None:
    box = np.array([0, 0, 450, 300], dtype=np.int64)
    item = run(CropMat(), IMAGE, _box=box, box=[0, 0, 1, 1])
    assert item["result"].shape == IMAGE.shape


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({}, "CropMat needs a box [x1, y1, x2, y2] in one of _box, BOX, box"),
        ({"_box": [1, 2, 3]}, "_box must be 4 integers [x1, y1, x2, y2], got [1, 2, 3]"),
        ({"box": [1.5, 2, 3, 4]}, "box must be 4 integers [x1, y1, x2, y2], got [1.5, 2, 3, 4]"),
        ({"box": None}, "box must be 4 integers [x1, y1, x2, y2], got None"),
        ({"box": [0, 0, 451, 10]}, "box box=[0, 0, 451, 10] is empty or outside the 450x300"),
        ({"box": [-1, 0, 10, 10]}, "box box=[-1, 0, 10, 10] is empty or outside"),
        ({"box": [5, 5, 5, 10]}, "box box=[5, 5, 5, 10] is empty or outside"),
    ],
)
def test_crop_rejects_bad_boxes(keys: dict[str, Any], message: str) -> None:
    assert message in error(CropMat(), IMAGE, **keys)


# -- the coordinate convention ---------------------------------------------------------


def marker_image() -> np.ndarray[Any, Any]:
    """A black 300 x 450 image with one white 40 x 40 square centred on (299.5, 99.5)."""
    image = np.zeros((300, 450, 3), dtype=np.uint8)
    image[80:120, 280:320] = 255
    return image


def centre_of_white(image: np.ndarray[Any, Any]) -> tuple[float, float]:
    ys, xs = np.nonzero(image[..., 0] > 127)
    return float(xs.mean()), float(ys.mean())


@pytest.mark.parametrize(
    ("kernel", "keys"),
    [
        (ResizePadMat(224, 224), {}),
        (LetterBoxMat(640, 640), {}),
        (LetterBoxMat(200, 100), {}),
        (CropMat(), {"_box": [250, 50, 400, 200]}),
    ],
    ids=["resize-pad", "letterbox-up", "letterbox-down", "crop"],
)
def test_offset_and_scale_map_back_to_the_original(
    kernel: ItemKernel, keys: dict[str, Any]
) -> None:
    item = run(kernel, marker_image(), **keys)
    x, y = to_original(centre_of_white(item["result"]), item)
    one_pixel = max(1.0, 1.0 / item["scale"])  # of the output, in original pixels
    assert x == pytest.approx(299.5, abs=one_pixel)
    assert y == pytest.approx(99.5, abs=one_pixel)
