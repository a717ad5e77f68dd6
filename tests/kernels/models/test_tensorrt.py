"""TensorrtTensor: the pure planning logic everywhere, the engine where TensorRT exists."""

from __future__ import annotations

import importlib.util

import pytest

import torchweir as tw
from torchweir.kernels.models.tensorrt import (
    Profile,
    TensorrtTensor,
    engine_key,
    parse_shapes,
    plan_profiles,
    split_batches,
)

HAS_TENSORRT = importlib.util.find_spec("tensorrt") is not None


def test_parse_shapes_reads_dims_inputs_and_instances() -> None:
    assert parse_shapes("4x3x224x224") == [[(4, 3, 224, 224)]]
    assert parse_shapes("1x3x224x224,1x10;8x3x224x224,8x10") == [
        [(1, 3, 224, 224), (1, 10)],
        [(8, 3, 224, 224), (8, 10)],
    ]
    assert parse_shapes(4) == [[(4,)]]
    for bad in ("4x", "0x3", "ax3", ""):
        with pytest.raises(ValueError, match="expected dimensions like 4x3x224x224"):
            parse_shapes(bad)


def test_profiles_complete_batch_only_shapes_from_the_model_and_repeat_the_last() -> None:
    profiles = plan_profiles("1", "4;8", 3, [(-1, 3, 224, 224)])
    assert [p.max_batch for p in profiles] == [4, 8, 8]
    assert profiles[0] == Profile(
        min=((1, 3, 224, 224),), opt=((4, 3, 224, 224),), max=((4, 3, 224, 224),)
    )
    assert profiles[2].min_batch == 1


def test_profiles_reject_shapes_that_do_not_fit_the_model() -> None:
    with pytest.raises(tw.ConfigError, match="dynamic dimensions; give the full shape"):
        plan_profiles("1", "4", 1, [(-1, 3, -1, -1)])
    with pytest.raises(tw.ConfigError, match=r"min \(8, 3, 224, 224\) exceeds max"):
        plan_profiles("8", "4", 1, [(-1, 3, 224, 224)])
    with pytest.raises(tw.ConfigError, match="the model has 1 input"):
        plan_profiles("1", "4x3x224x224,4x10", 1, [(-1, 3, 224, 224)])
    with pytest.raises(tw.ConfigError, match="does not match the model's input"):
        plan_profiles("1", "4x224x224", 1, [(-1, 3, 224, 224)])


def test_split_batches_covers_every_item_once_within_the_limit() -> None:
    assert split_batches(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert split_batches(0, 4) == []
    with pytest.raises(ValueError, match="limit must be >= 1"):
        split_batches(3, 0)


def test_the_engine_key_changes_with_model_gpu_version_precision_and_profiles() -> None:
    profiles = plan_profiles("1", "4", 1, [(-1, 3, 224, 224)])
    base = engine_key(b"onnx", "NVIDIA H100 sm_90", "10.3", "fp16", profiles)
    assert base == engine_key(b"onnx", "NVIDIA H100 sm_90", "10.3", "fp16", profiles)
    variants = [
        engine_key(b"other", "NVIDIA H100 sm_90", "10.3", "fp16", profiles),
        engine_key(b"onnx", "NVIDIA H200 sm_90", "10.3", "fp16", profiles),
        engine_key(b"onnx", "NVIDIA H100 sm_90", "10.4", "fp16", profiles),
        engine_key(b"onnx", "NVIDIA H100 sm_90", "10.3", "fp32", profiles),
        engine_key(
            b"onnx",
            "NVIDIA H100 sm_90",
            "10.3",
            "fp16",
            plan_profiles("1", "8", 1, [(-1, 3, 224, 224)]),
        ),
    ]
    assert len({base, *variants}) == 6


@pytest.mark.skipif(HAS_TENSORRT, reason="TensorRT is installed here")
def test_without_tensorrt_it_fails_at_load_naming_the_alternatives() -> None:
    with pytest.raises(tw.ConfigError) as caught:
        TensorrtTensor.from_params({"model": "resnet50.onnx", "max": "4x3x224x224"})
    message = str(caught.value)
    assert "TensorrtTensor needs TensorRT" in message
    assert "OnnxModel" in message
    assert "TorchModel" in message
    assert "pip install tensorrt" in message


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_TENSORRT, reason="TensorRT is not installed")
def test_tensorrt_matches_onnxruntime(tmp_path: object) -> None:  # pragma: no cover
    import asyncio

    import torch

    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten()
    ).eval()
    onnx = tmp_path / "m.onnx"  # type: ignore[operator]
    torch.onnx.export(
        model,
        (torch.randn(1, 3, 32, 32),),
        onnx,
        dynamo=False,
        input_names=["x"],
        dynamic_axes={"x": {0: "b"}},
    )
    g = tw.Graph()
    g.node(
        "trt",
        "TensorrtTensor",
        model=str(onnx),
        max="4x3x32x32",
        min="1x3x32x32",
        instance_num=2,
        **{"model::cache": str(tmp_path / "m.trt")},
    )  # type: ignore[operator]
    xs = [torch.randn(1, 3, 32, 32) for _ in range(9)]

    async def main() -> list[torch.Tensor]:
        async with tw.Runtime(g) as rt:
            return await rt.submit_many(xs)

    outs = asyncio.run(main())
    for x, out in zip(xs, outs, strict=True):
        torch.testing.assert_close(out, model(x), rtol=1e-3, atol=1e-3)
