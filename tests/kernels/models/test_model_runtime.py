"""Model kernels inside a real runtime: batching across concurrent submits, TOML nodes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import torch
from tests.kernels.models.conftest import MEAN, SIZE, STD, Recording, images, run

import torchweir as tw
from torchweir.graphs.toml import loads_toml
from torchweir.kernels.models import OnnxModel, TorchModel
from torchweir.kernels.models.resnet import ResNet

pytestmark = pytest.mark.asyncio


async def test_concurrent_submits_match_direct_calls(tiny: ResNet) -> None:
    data = images(24)
    expected, _ = run(TorchModel(tiny, mean=MEAN, std=STD), data)
    module = Recording(tiny)
    g = tw.Graph()
    g.node(
        "model",
        TorchModel(module, mean=MEAN, std=STD, max_batch=8, input_shape=f"3x{SIZE}x{SIZE}"),
        instance_num=2,
        batching_timeout=5,
    )
    bad = torch.zeros(1, 3, 8, 8, dtype=torch.uint8)
    async with tw.Runtime(g) as rt:
        outcomes = await asyncio.gather(
            *(rt.submit(x) for x in [*data[:12], bad, *data[12:]]), return_exceptions=True
        )
    error = outcomes.pop(12)
    assert isinstance(error, tw.InputError)
    assert error.node == "model"
    assert "1x3x8x8" in str(error)
    for got, want in zip(outcomes, expected, strict=True):
        assert isinstance(got, torch.Tensor)
        torch.testing.assert_close(got, want["result"], rtol=1e-4, atol=1e-5)
    assert sum(module.sizes) == len(data)
    assert 1 < max(module.sizes) <= 8  # requests were batched together, within max


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
@pytest.mark.parametrize("backend", ["TorchModel", "OnnxModel"])
async def test_toml_nodes_build_model_kernels_from_their_keys(
    tiny: ResNet, tiny_pt: Path, tiny_onnx: Path, backend: str
) -> None:
    model = tiny_pt if backend == "TorchModel" else tiny_onnx
    spec = loads_toml(
        f"""
        batching_timeout = 2
        [model]
        backend = "{backend}"
        model = "{model}"
        max = "4x3x{SIZE}x{SIZE}"
        mean = "{MEAN}"
        std = "{STD}"
        instance_num = 2
        """
    )
    data = images(6)
    expected, _ = run(TorchModel(tiny, mean=MEAN, std=STD), data)
    async with tw.Runtime(spec) as rt:
        got = await rt.submit_many(data)
        with pytest.raises(tw.InputError, match="does not fit the model's input 3x32x32"):
            await rt.submit(torch.zeros(1, 3, 16, 16))
    for result, want in zip(got, expected, strict=True):
        torch.testing.assert_close(result, want["result"], rtol=1e-4, atol=1e-4)


async def test_a_node_whose_model_cannot_load_fails_start(tmp_path: Path) -> None:
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"junk")
    g = tw.Graph()
    g.node("model", OnnxModel(junk))
    with pytest.raises(tw.ConfigError, match="onnxruntime cannot load"):
        async with tw.Runtime(g):
            pass
