"""The CPU kernels under their torchpipe names, chained in a runtime node."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import pytest
import torch

import torchweir as tw
from torchweir.data import sample_image_bytes
from torchweir.kernels.cpu import preprocess_reference  # and registers DecodeMat & co.
from torchweir.kernels.registry import is_registered

JPEGS = sample_image_bytes()
BACKEND = "S[DecodeMat,ResizeMat,cvtColorMat,Mat2Tensor]"
NAMES = [
    "DecodeMat",
    "ResizeMat",
    "cvtColorMat",
    "CvtColorMat",
    "Mat2Tensor",
    "ResizePadMat",
    "CropMat",
    "LetterBoxMat",
    "Tensor2Mat",
]


@pytest.mark.parametrize("name", NAMES)
def test_torchpipe_names_are_registered(name: str) -> None:
    assert is_registered(name)


def test_preprocess_reference_is_decode_resize_swap_transpose() -> None:
    tensor = preprocess_reference(JPEGS[0], 224, 200)
    image = cv2.imdecode(np.frombuffer(JPEGS[0], np.uint8), cv2.IMREAD_COLOR)
    rgb = cv2.resize(image, (200, 224), interpolation=cv2.INTER_LINEAR)[..., ::-1]
    assert tensor.shape == (1, 3, 224, 200)
    assert tensor.is_contiguous()
    assert torch.equal(tensor[0], torch.from_numpy(rgb.copy()).permute(2, 0, 1))
    assert torch.equal(preprocess_reference(JPEGS[0], 224, 200, color="bgr"), tensor.flip(1))
    with pytest.raises(ValueError, match="could not decode 4 bytes"):
        preprocess_reference(b"\xff\xd8\xff\x00", 8, 8)


def decode_graph(**params: Any) -> tw.Graph:
    g = tw.Graph()
    g.node(
        "decode", BACKEND, **{"resize_h": 224, "resize_w": 224, "color": "rgb", "max": 8, **params}
    )
    return g


@pytest.mark.asyncio
async def test_bad_images_fail_alone_through_the_runtime() -> None:
    bad = {
        1: "/not/bytes.jpg",
        3: b"",
        4: np.random.default_rng(1).bytes(500),
        6: JPEGS[2][: len(JPEGS[2]) // 2],
        8: JPEGS[2].replace(b"\xff\xc0\x00\x11\x08\x01\x2c", b"\xff\xc0\x00\x11\x08\x27\x10"),
        9: cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))[1].tobytes(),
    }
    expected = {
        1: "got str",
        3: "empty image payload",
        4: "unrecognised image format",
        6: "truncated JPEG",
        8: "450x10000 = 4,500,000 pixels exceeds max_pixels=1,000,000",
        9: "PNG images are not accepted",
    }
    good = iter(JPEGS)
    inputs = [bad[i] if i in bad else next(good) for i in range(len(JPEGS) + len(bad))]
    async with tw.Runtime(decode_graph(instance_num=2, max_pixels=1_000_000)) as rt:
        outcomes = await rt.submit_many(inputs, return_exceptions=True)
    good = iter(JPEGS)
    for i, outcome in enumerate(outcomes):
        if i in bad:
            assert isinstance(outcome, tw.InputError), (i, outcome)
            assert outcome.node == "decode"
            assert expected[i] in str(outcome), (i, str(outcome))
        else:
            assert isinstance(outcome, torch.Tensor), (i, outcome)
            assert torch.equal(outcome, preprocess_reference(next(good), 224, 224))


@pytest.mark.asyncio
async def test_request_dict_keeps_the_keys_kernels_set() -> None:
    async with tw.Runtime(decode_graph()) as rt:
        request = await rt.submit({"data": JPEGS[0]})
    assert request["color"] == "rgb"
    assert request["data_format"] == "nchw"
    assert torch.equal(request["result"], preprocess_reference(JPEGS[0], 224, 224))


@pytest.mark.asyncio
async def test_bad_parameters_are_config_errors_naming_the_node() -> None:
    with pytest.raises(tw.ConfigError, match=r"node 'decode'.*resize_h must be an int in"):
        async with tw.Runtime(decode_graph(resize_h=0)):
            pass
    with pytest.raises(tw.ConfigError, match=r"node 'decode'.*unknown image format\(s\) 'heic'"):
        async with tw.Runtime(decode_graph(formats="jpeg,heic")):
            pass
