from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from torchweir.errors import ConfigError, InputError
from torchweir.kernels import InstanceContext, ItemKernel
from torchweir.kernels.cpu import Mat2Tensor, Tensor2Mat
from torchweir.kernels.registry import create_kernel

IMAGE = np.random.default_rng(3).integers(0, 256, (30, 40, 3), dtype=np.uint8)
NO_CUDA = not torch.cuda.is_available()


def run(kernel: ItemKernel, data: Any, **keys: Any) -> dict[str, Any]:
    item = {"data": data, **keys}
    outcome = kernel.forward([item])
    assert outcome is None, outcome
    return item


def error(kernel: ItemKernel, data: Any, **keys: Any) -> str:
    outcome = kernel.forward([{"data": data, **keys}])
    assert outcome is not None, "expected an InputError"
    assert isinstance(outcome[0], InputError), repr(outcome[0])
    return str(outcome[0])


# -- Mat2Tensor ------------------------------------------------------------------------


def test_nchw_is_a_contiguous_copy() -> None:
    image = IMAGE.copy()
    item = run(Mat2Tensor(), image)
    tensor = item["result"]
    assert item["data_format"] == "nchw"
    assert tensor.shape == (1, 3, 30, 40)
    assert tensor.dtype == torch.uint8
    assert tensor.is_contiguous()
    assert torch.equal(tensor, torch.from_numpy(IMAGE).permute(2, 0, 1)[None])
    image[:] = 0  # the tensor owns its memory
    assert torch.equal(tensor[0, 0], torch.from_numpy(IMAGE[..., 0]))


def test_hwc_is_a_copy_even_when_the_layout_matches() -> None:
    image = IMAGE.copy()
    tensor = run(Mat2Tensor(data_format="HWC"), image)["result"]
    assert tensor.shape == (30, 40, 3)
    assert not np.shares_memory(tensor.numpy(), image)
    assert torch.equal(tensor, torch.from_numpy(IMAGE))


def test_gray_read_only_and_reversed_arrays() -> None:
    gray = IMAGE[..., 0]
    assert torch.equal(run(Mat2Tensor(), gray)["result"][0, 0], torch.from_numpy(gray.copy()))
    frozen = IMAGE.copy()
    frozen.flags.writeable = False  # torch.from_numpy would warn (an error under pytest)
    assert torch.equal(
        run(Mat2Tensor(data_format="hwc"), frozen)["result"], torch.from_numpy(IMAGE)
    )
    flipped = IMAGE[:, ::-1]  # negative strides: torch.from_numpy refuses them
    expected = torch.from_numpy(flipped.copy()).permute(2, 0, 1)[None]
    assert torch.equal(run(Mat2Tensor(), flipped)["result"], expected)


def test_keeps_the_dtype() -> None:
    floats = IMAGE.astype(np.float32) / 255
    tensor = run(Mat2Tensor(), floats)["result"]
    assert tensor.dtype == torch.float32
    assert torch.equal(tensor, torch.from_numpy(floats).permute(2, 0, 1)[None])


def test_params_and_devices() -> None:
    kernel = create_kernel("Mat2Tensor", {"device": "CPU", "data_format": "hwc", "pinned": "0"})
    assert isinstance(kernel, Mat2Tensor)
    assert (kernel.device, kernel.data_format, kernel.pinned) == ("cpu", "hwc", False)
    with pytest.raises(ConfigError, match="data_format must be 'nchw' or 'hwc', got 'nhwc'"):
        Mat2Tensor(data_format="nhwc")
    with pytest.raises(
        ConfigError, match="device must be 'cpu', 'gpu', 'cuda' or 'cuda:N', got 'tpu'"
    ):
        Mat2Tensor(device="tpu")


@pytest.mark.skipif(not NO_CUDA, reason="checks the error raised without CUDA")
# ids: the conftest skips any test with a "gpu" keyword, and a parameter id is one.
@pytest.mark.parametrize("device", ["gpu", "cuda", "cuda:1"], ids=["alias", "cuda", "index"])
def test_cuda_without_cuda_is_a_config_error(device: str) -> None:
    with pytest.raises(ConfigError, match=f"device={device!r} needs CUDA.*use device='cpu'"):
        Mat2Tensor(device=device)


@pytest.mark.skipif(not NO_CUDA, reason="checks the fallback without CUDA")
def test_pinned_is_ignored_without_cuda() -> None:
    kernel = Mat2Tensor(pinned=True)
    assert kernel.pinned is False
    assert torch.equal(run(kernel, IMAGE)["result"][0], torch.from_numpy(IMAGE).permute(2, 0, 1))


@pytest.mark.gpu
def test_pinned_and_cuda_results() -> None:
    pinned = run(Mat2Tensor(pinned=True), IMAGE)["result"]
    assert pinned.is_pinned()
    assert torch.equal(pinned[0], torch.from_numpy(IMAGE).permute(2, 0, 1))
    with pytest.raises(ConfigError, match="device='cuda:99', but torch sees"):
        Mat2Tensor(device="cuda:99")
    kernel = Mat2Tensor(device="gpu").setup(InstanceContext("n", device="cuda:0"))
    assert isinstance(kernel, Mat2Tensor)
    on_gpu = run(kernel, IMAGE)["result"]
    assert on_gpu.device == torch.device("cuda:0")
    assert torch.equal(on_gpu.cpu(), pinned)


@pytest.mark.parametrize(
    ("data", "named"),
    [
        (torch.zeros(3, 4, 4), "got Tensor"),
        (np.zeros((2, 3, 4, 5), np.uint8), "got shape (2, 3, 4, 5)"),
        (np.zeros((2, 2), dtype=object), "cannot hold a object array"),
    ],
)
def test_mat2tensor_rejects_non_images(data: Any, named: str) -> None:
    assert named in error(Mat2Tensor(), data)


# -- Tensor2Mat ------------------------------------------------------------------------


@pytest.mark.parametrize("data_format", ["nchw", "hwc"])
def test_round_trip(data_format: str) -> None:
    item = run(Mat2Tensor(data_format=data_format), IMAGE)
    back = run(Tensor2Mat(), item["result"], data_format=item["data_format"])["result"]
    assert isinstance(back, np.ndarray)
    assert back.dtype == np.uint8
    np.testing.assert_array_equal(back, IMAGE)


def test_layouts_without_a_data_format_key() -> None:
    chw = torch.from_numpy(IMAGE).permute(2, 0, 1)
    np.testing.assert_array_equal(run(Tensor2Mat(), chw)["result"], IMAGE)
    np.testing.assert_array_equal(run(Tensor2Mat(), chw.contiguous())["result"], IMAGE)
    hwc = torch.from_numpy(IMAGE)
    out = run(Tensor2Mat(), hwc)["result"]
    assert not np.shares_memory(out, IMAGE)
    np.testing.assert_array_equal(out, IMAGE)


def test_floats_are_rounded_and_clamped() -> None:
    values = torch.tensor([[[-3.0, 0.4, 0.6], [254.5, 255.4, 400.0]]])  # 1 x 2 x 3 (HWC)
    out = run(Tensor2Mat(), values)["result"]
    np.testing.assert_array_equal(out, [[[0, 0, 1], [254, 255, 255]]])


@pytest.mark.parametrize(
    ("data", "named"),
    [
        (IMAGE, "expects a torch.Tensor, got ndarray"),
        (torch.zeros(5, 5), "got shape (5, 5)"),
        (torch.zeros(2, 3, 4, 4), "got shape (2, 3, 4, 4)"),
        (torch.zeros(5, 6, 7), "got shape (5, 6, 7)"),
        (torch.zeros(4, 4, 3, dtype=torch.bool), "integer or float tensor, got torch.bool"),
    ],
)
def test_tensor2mat_rejects_other_shapes(data: Any, named: str) -> None:
    assert named in error(Tensor2Mat(), data)
