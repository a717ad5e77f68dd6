"""The fused ResizeMat, cvtColorMat, Mat2Tensor step equals the chain, bit for bit."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

import torchweir.kernels.cpu  # noqa: F401  (registers the names and the fusion)
from torchweir.data import sample_image_bytes
from torchweir.errors import InputError
from torchweir.kernels.compose import Sequential
from torchweir.kernels.cpu import CvtColorMat, DecodeMat, Mat2Tensor, ResizeMat
from torchweir.kernels.cpu.fused import ResizeCvtColorTensor
from torchweir.kernels.cpu.reference import preprocess_reference


def chain(**tensor: Any) -> Sequential:
    return Sequential(
        [
            ("", DecodeMat()),
            ("", ResizeMat(224, 200)),
            ("", CvtColorMat("rgb")),
            ("", Mat2Tensor(**tensor)),
        ]
    )


def test_the_chain_is_fused_into_decode_plus_one_step() -> None:
    steps = [type(k) for _, k in chain().steps]
    assert steps == [DecodeMat, ResizeCvtColorTensor]


@pytest.mark.parametrize("index", range(len(sample_image_bytes())))
def test_fused_output_equals_the_plain_opencv_chain(index: int) -> None:
    jpeg = sample_image_bytes()[index]
    items = [{"data": jpeg}]
    assert chain().forward(items) is None
    out = items[0]["result"]
    assert out.dtype == torch.uint8
    assert out.shape == (1, 3, 224, 200)
    assert torch.equal(out, preprocess_reference(jpeg, 224, 200, "rgb"))
    assert items[0]["color"] == "rgb"
    assert items[0]["data_format"] == "nchw"


def test_unusual_inputs_take_the_unfused_path_with_the_same_results_and_errors() -> None:
    fused = ResizeCvtColorTensor(ResizeMat(4, 4), CvtColorMat("bgr"), Mat2Tensor())
    rgb = np.arange(8 * 8 * 3, dtype=np.uint8).reshape(8, 8, 3)
    item: dict[str, Any] = {"data": rgb, "color": "rgb"}
    fused.process(item)  # rgb -> bgr: swapped
    reference: dict[str, Any] = {"data": rgb, "color": "rgb"}
    for step in fused.steps:
        step.process(reference)
        reference["data"] = reference.pop("result")
    assert torch.equal(item["result"], reference["data"])
    gray = np.zeros((8, 8), dtype=np.uint8)
    to_rgb = ResizeCvtColorTensor(ResizeMat(4, 4), CvtColorMat("rgb"), Mat2Tensor())
    with pytest.raises(
        InputError, match=r"swaps the channels of H x W x 3 images, got shape \(4, 4\)"
    ):
        to_rgb.process({"data": gray})  # the same error the unfused CvtColorMat gives


@pytest.mark.parametrize(
    "steps",
    [
        [("", ResizeMat(4, 4)), ("Skip", CvtColorMat("rgb")), ("", Mat2Tensor())],
        [("", ResizeMat(4, 4)), ("", CvtColorMat("rgb")), ("", Mat2Tensor(data_format="hwc"))],
        [("", ResizeMat(4, 4)), ("", Mat2Tensor())],
    ],
)
def test_other_chains_are_left_alone(steps: list[tuple[str, Any]]) -> None:
    assert not any(isinstance(k, ResizeCvtColorTensor) for _, k in Sequential(steps).steps)
