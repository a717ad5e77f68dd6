"""The seed's ResNet-50 service end to end on the CPU: bad input, consistency, twins."""

from __future__ import annotations

import asyncio
import shutil
import sys
import warnings
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

import torchweir as tw
from torchweir.data import sample_image_bytes
from torchweir.graphs.toml import load_toml
from torchweir.kernels.cpu.reference import preprocess_reference

EXAMPLE = Path(__file__).parents[2] / "examples" / "resnet50"
sys.path.insert(0, str(EXAMPLE))
import resnet50_graph  # noqa: E402

MEAN = (123.675, 116.28, 103.53)
STD = (58.395, 57.120, 57.375)
#: onnxruntime and torch agree on the same fp32 network to about 1e-5; batching changes
#: the summation order, so the same image may move by about as much between batches.
TOLERANCE = {"rtol": 1e-3, "atol": 1e-3}


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example's TOML beside a freshly exported resnet50.onnx (seed 0)."""
    from torchweir.kernels.models.resnet import export_resnet50

    folder = tmp_path_factory.mktemp("resnet50")
    with warnings.catch_warnings():  # torch's own exporter trips its own FutureWarning
        warnings.filterwarnings("ignore", ".*LeafSpec.*", FutureWarning)
        export_resnet50(folder, seed=0, formats=("onnx",))
    shutil.copy(EXAMPLE / "resnet50_cpu.toml", folder)
    return folder / "resnet50_cpu.toml"


@pytest.fixture(scope="module")
def direct() -> Any:
    """The unbatched reference: OpenCV preprocessing, then the torch ResNet-50 alone."""
    import torch

    from torchweir.kernels.models.resnet import resnet50

    model = resnet50(seed=0).eval()
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)

    def logits(jpeg: bytes) -> Any:
        x = preprocess_reference(jpeg, 224, 224, "rgb").float()
        with torch.inference_mode():
            return model((x - mean) / std)

    return logits


def run(config: Path, requests: list[Any]) -> list[Any]:
    async def main() -> list[Any]:
        async with tw.Runtime.from_toml(config) as rt:
            return await rt.submit_many(requests, return_exceptions=True)

    return asyncio.run(main())


def test_the_toml_and_its_python_twin_build_equal_specs(tmp_path: Path) -> None:
    shutil.copy(EXAMPLE / "resnet50_cpu.toml", tmp_path)
    (tmp_path / "resnet50.onnx").write_bytes(b"placeholder")
    assert (
        load_toml(tmp_path / "resnet50_cpu.toml")
        == resnet50_graph.build(tmp_path / "resnet50.onnx").spec()
    )


def test_the_seed_graph_differs_from_the_quick_start_only_where_documented() -> None:
    seed = load_toml(Path(__file__).parents[1] / "graphs" / "fixtures" / "seed_fixed.toml")
    ours = load_toml(EXAMPLE / "resnet50_cpu.toml")
    assert seed.names == ours.names
    for a, b in zip(seed.nodes, ours.nodes, strict=True):
        assert (a.next, a.instance_num, a.batching_timeout, a.min, a.max) == (
            b.next,
            b.instance_num,
            b.batching_timeout,
            b.min,
            b.max,
        )
    assert seed.node("resnet50").backend == "Torch[TensorrtTensor]"
    assert ours.node("resnet50").backend == "Torch[OnnxModel]"


def bad_inputs() -> dict[str, Any]:
    jpeg = sample_image_bytes()[2]
    sof = jpeg.index(b"\xff\xc0")
    huge = jpeg[: sof + 5] + (60000).to_bytes(2, "big") * 2 + jpeg[sof + 9 :]
    ok, png = cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))
    assert ok
    return {
        "truncated JPEG": jpeg[: len(jpeg) // 2],
        "random bytes": np.random.default_rng(0).bytes(4096),
        "empty bytes": b"",
        "PNG": png.tobytes(),
        "very large declared size": huge,
        "not bytes": 3.5,
    }


@pytest.mark.slow
def test_bad_input_fails_only_its_own_request(service: Path, direct: Any) -> None:
    import torch

    good = sample_image_bytes()
    bad = bad_inputs()
    requests = [good[0], *bad.values(), good[1], good[4]]  # camera_gray is index 1
    outcomes = run(service, requests)
    for name, outcome in zip(bad, outcomes[1 : 1 + len(bad)], strict=True):
        assert isinstance(outcome, tw.InputError), (name, outcome)
        assert outcome.node == "cpu_decoder", name
    succeeded = [outcomes[0], *outcomes[1 + len(bad) :]]
    for jpeg, outcome in zip([good[0], good[1], good[4]], succeeded, strict=True):
        assert isinstance(outcome, torch.Tensor), outcome
        torch.testing.assert_close(outcome, direct(jpeg), **TOLERANCE)
    wrong_shape = run(
        service, [{"data": torch.zeros(1, 3, 100, 100, dtype=torch.uint8), "node_name": "resnet50"}]
    )[0]
    assert isinstance(wrong_shape, tw.InputError)
    assert wrong_shape.node == "resnet50"
    assert "(1, 3, 100, 100)" in str(wrong_shape) or "3x100x100" in str(wrong_shape)


@pytest.mark.slow
def test_ten_concurrent_clients_always_get_the_same_outputs(service: Path, direct: Any) -> None:
    import torch

    images = sample_image_bytes()
    rounds = 2

    async def client(rt: tw.Runtime, k: int) -> list[tuple[int, Any]]:
        seen = []
        for r in range(rounds):
            for i in range(len(images)):
                j = (i + k + r) % len(images)  # clients interleave: batches mix differently
                seen.append((j, await rt.submit(images[j])))
        return seen

    async def main() -> list[list[tuple[int, Any]]]:
        async with tw.Runtime.from_toml(service) as rt:
            results = await asyncio.gather(*(client(rt, k) for k in range(10)))
            sizes = next(s for s in rt.statistics().nodes if s.node == "resnet50").batch_sizes
            assert sum(sizes[2:]) > 0, "the model saw batches larger than 1"
            return results

    per_image: dict[int, list[Any]] = {}
    for seen in asyncio.run(main()):
        for j, out in seen:
            per_image.setdefault(j, []).append(out)
    assert all(len(outs) == 10 * rounds for outs in per_image.values())
    for j, outs in per_image.items():
        reference = direct(images[j])
        for out in outs:
            torch.testing.assert_close(out, outs[0], rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(out, reference, **TOLERANCE)


@pytest.mark.slow
def test_the_naive_baseline_computes_what_the_graph_computes(service: Path) -> None:
    import torch

    from torchweir.bench.naive import naive_service

    images = sample_image_bytes()
    graph_outputs = run(service, list(images))
    serve = naive_service(service)
    for jpeg, expected in zip(images, graph_outputs, strict=True):
        torch.testing.assert_close(serve(jpeg), expected, rtol=1e-5, atol=1e-5)
