"""TorchModel: loading, normalisation, precision, batching, per-item errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pytest
import torch
from tests.kernels.models.conftest import MEAN, SIZE, STD, Recording, images, manual, run

from torchweir.errors import ConfigError, InputError, KernelError
from torchweir.kernels.base import InstanceContext
from torchweir.kernels.models import TorchModel
from torchweir.kernels.models.resnet import ResNet

JIT_DEPRECATED = pytest.mark.filterwarnings(
    "ignore:`torch.jit.load` is deprecated:DeprecationWarning"
)


def results(items: list[dict[str, Any]]) -> list[Any]:
    return [item["result"] for item in items]


def test_batch_results_equal_per_item_calls(tiny: ResNet) -> None:
    kernel = TorchModel(tiny, mean=MEAN, std=STD)
    data = images(5)
    items, outcome = run(kernel, data)
    assert outcome is None
    for x, result in zip(data, results(items), strict=True):
        assert result.shape == (1, 10)
        assert result.dtype == torch.float32
        assert result.device.type == "cpu"
        (alone,), _ = run(kernel, [x])
        torch.testing.assert_close(result, alone["result"], rtol=1e-4, atol=1e-5)
    first, second = results(items)[:2]
    assert (first - second).abs().max() > 1e-3  # different images, different logits


def test_mean_std_are_fused_into_the_input(tiny: ResNet) -> None:
    (x,) = images(1)
    (item,), _ = run(TorchModel(tiny, mean=MEAN, std=STD), [x])
    torch.testing.assert_close(item["result"], manual(tiny, x), rtol=1e-4, atol=1e-5)
    one_value = TorchModel(tiny, mean=127.5, std=[64.0])  # one value for all channels
    (item,), _ = run(one_value, [x])
    with torch.inference_mode():
        expected = tiny((x.float() - 127.5) / 64.0)
    torch.testing.assert_close(item["result"], expected, rtol=1e-4, atol=1e-5)


def test_without_mean_std_uint8_is_cast_and_float_passes_through(tiny: ResNet) -> None:
    x = images(1)[0]
    items, _ = run(TorchModel(tiny), [x, x.float() / 255])
    with torch.inference_mode():
        torch.testing.assert_close(items[0]["result"], tiny(x.float()))
        torch.testing.assert_close(items[1]["result"], tiny(x.float() / 255))


@pytest.mark.parametrize(("precision", "tolerance"), [("fp16", 0.01), ("bf16", 0.05)])
def test_half_precisions_stay_close_to_fp32(tiny: ResNet, precision: str, tolerance: float) -> None:
    """Tolerance: the largest error relative to the largest logit of the batch."""
    data = images(4)
    reference, _ = run(TorchModel(tiny, mean=MEAN, std=STD), data)
    items, outcome = run(TorchModel(tiny, mean=MEAN, std=STD, precision=precision), data)
    assert outcome is None
    ref = torch.cat(results(reference))
    out = torch.cat(results(items))
    assert out.dtype == torch.float32
    assert (out - ref).abs().max() <= tolerance * ref.abs().max()
    assert (out - ref).abs().max() > 0  # it did run in the lower precision
    assert next(tiny.parameters()).dtype == torch.float32  # the caller's module is untouched


def test_tensor_layouts_and_numpy_give_the_same_result(tiny: ResNet) -> None:
    x = images(1)[0]
    frozen = x[0].numpy().copy()
    frozen.flags.writeable = False
    flipped = x[0].numpy()[::-1].copy()[::-1]  # a view with a negative stride, as cv2 makes
    items, outcome = run(TorchModel(tiny), [x, x[0], x.numpy(), frozen, flipped])
    assert outcome is None
    for item in items[1:]:
        torch.testing.assert_close(item["result"], items[0]["result"])


def test_batches_over_max_run_in_chunks() -> None:
    module = Recording()
    data = [torch.full((1, 1, 2, 2), float(i)) for i in range(5)]
    items, outcome = run(TorchModel(module, max_batch=2), data)
    assert outcome is None
    assert module.sizes == [2, 2, 1]
    assert [float(r) for r in results(items)] == [4.0 * i for i in range(5)]


def test_wrong_shape_fails_only_that_item_when_the_shape_is_known(tiny: ResNet) -> None:
    good = images(2)
    bad = torch.zeros(1, 3, 16, 16, dtype=torch.uint8)
    kernel = TorchModel(tiny, mean=MEAN, std=STD, input_shape=f"3x{SIZE}x{SIZE}")
    items, outcome = run(kernel, [good[0], bad, good[1]])
    assert outcome is not None
    assert outcome[0] is None
    assert outcome[2] is None
    assert isinstance(outcome[1], InputError)
    assert "1x3x16x16" in str(outcome[1])
    assert f"3x{SIZE}x{SIZE}" in str(outcome[1])
    assert "result" not in items[1]
    for x, item in zip(good, (items[0], items[2]), strict=True):
        torch.testing.assert_close(item["result"], manual(tiny, x), rtol=1e-4, atol=1e-5)


def test_unknown_shape_groups_items_by_shape(tiny: ResNet) -> None:
    module = Recording(tiny)
    small, large = images(2, size=32), images(1, size=48)
    items, outcome = run(TorchModel(module), [small[0], large[0], small[1]])
    assert outcome is None
    assert sorted(module.sizes) == [1, 2]
    for x, item in zip([small[0], large[0], small[1]], items, strict=True):
        with torch.inference_mode():
            torch.testing.assert_close(item["result"], tiny(x.float()), rtol=1e-4, atol=1e-5)


def test_a_failing_group_fails_only_its_items() -> None:
    def picky(x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] == 3:
            raise RuntimeError("no odd sizes")
        return x.flatten(1).sum(1, True)

    items, outcome = run(
        TorchModel(Recording(picky)),
        [torch.ones(1, 2, 2), torch.ones(1, 3, 3), torch.ones(1, 2, 2)],
    )
    assert outcome is not None
    assert isinstance(outcome[1], RuntimeError)
    assert outcome[0] is None
    assert outcome[2] is None
    assert float(items[0]["result"]) == 4.0


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\xff\xd8", "expected a tensor or numpy array, got bytes"),
        ("image.jpg", "got str"),
        (None, "got NoneType"),
        (np.array(["a"], dtype=object), "dtype object"),
        (torch.zeros(2, 3, 8, 8), "expected one image of shape 1xCxHxW or CxHxW, got 2x3x8x8"),
        (torch.zeros(8, 8), "got 8x8"),
    ],
)
def test_bad_inputs_are_input_errors_and_the_rest_runs(data: Any, message: str) -> None:
    items, outcome = run(TorchModel(Recording()), [torch.ones(1, 1, 2, 2), data])
    assert outcome is not None
    assert outcome[0] is None
    assert float(items[0]["result"]) == 4.0
    assert isinstance(outcome[1], InputError)
    assert message in str(outcome[1])


def test_channels_must_match_mean_std(tiny: ResNet) -> None:
    _, outcome = run(TorchModel(tiny, mean=MEAN, std=STD), [torch.zeros(1, 1, 8, 8)])
    assert outcome is not None
    assert isinstance(outcome[0], InputError)
    assert "1 channels but mean/std give 3" in str(outcome[0])


class Pair(NamedTuple):
    total: torch.Tensor
    index: torch.Tensor


def test_structured_outputs_split_element_by_element() -> None:
    def structured(x: torch.Tensor) -> Any:
        total = x.flatten(1).sum(1)
        return [Pair(total, x.flatten(1).argmax(1)), {"double": 2 * total}]

    data = [torch.full((1, 1, 2, 2), 1.0), torch.tensor([[[[0.0, 5.0], [1.0, 2.0]]]])]
    items, outcome = run(TorchModel(Recording(structured)), data)
    assert outcome is None
    pair, mapping = items[1]["result"]
    assert isinstance(pair, Pair)
    assert pair.total.tolist() == [8.0]
    assert pair.index.tolist() == [1]
    assert pair.index.dtype == torch.int64  # integer outputs keep their dtype
    assert mapping == {"double": mapping["double"]}
    assert mapping["double"].tolist() == [16.0]
    assert items[0]["result"][1]["double"].tolist() == [8.0]


@pytest.mark.parametrize(
    ("fn", "message"),
    [
        (lambda x: x.sum(), "model output of shape () has no leading batch dimension of 2"),
        (lambda x: x[:1], "of shape 1x1x2x2 has no leading batch dimension of 2"),
        (lambda x: "text", "model returned str"),
    ],
)
def test_outputs_without_a_batch_dimension_fail_the_batch(fn: Any, message: str) -> None:
    items, outcome = run(TorchModel(Recording(fn)), [torch.ones(1, 1, 2, 2)] * 2)
    assert outcome is not None
    assert all(isinstance(error, KernelError) and message in str(error) for error in outcome)
    assert all("result" not in item for item in items)


def assert_same_as_module(tiny: ResNet, path: Path) -> None:
    data = images(3)
    expected, _ = run(TorchModel(tiny, mean=MEAN, std=STD), data)
    items, outcome = run(TorchModel(path, mean=MEAN, std=STD, input_shape="3x32x32"), data)
    assert outcome is None
    for got, want in zip(results(items), results(expected), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


@JIT_DEPRECATED
def test_torchscript_file_matches_the_module(tiny: ResNet, tiny_pt: Path) -> None:
    assert_same_as_module(tiny, tiny_pt)


def test_torch_export_file_matches_the_module(tiny: ResNet, tiny_pt2: Path) -> None:
    assert_same_as_module(tiny, tiny_pt2)


@JIT_DEPRECATED
def test_instances_on_the_cpu_share_one_loaded_module(tiny_pt: Path) -> None:
    kernel = TorchModel(tiny_pt)
    first = kernel.setup(InstanceContext(node="m", index=0, instance_num=2))
    second = kernel.setup(InstanceContext(node="m", index=1, instance_num=2))
    assert first is not second
    assert first.module is second.module  # type: ignore[attr-defined]


def test_files_that_are_not_torch_models_are_config_errors(tmp_path: Path, tiny: ResNet) -> None:
    cases = {
        "model.onnx": (b"onnx", "is an ONNX model: use OnnxModel"),
        "weights.pt": (None, "a pickled object (a state dict?)"),
        "junk.pt": (b"junk", "not a zip archive"),
    }
    for name, (content, message) in cases.items():
        path = tmp_path / name
        if content is None:
            torch.save(tiny.state_dict(), path)
        else:
            path.write_bytes(content)
        with pytest.raises(ConfigError, match="key 'model'") as info:
            TorchModel(path).setup(InstanceContext(node="m"))
        assert message in str(info.value)
        assert str(path) in str(info.value)


def test_model_must_be_a_module_or_a_path() -> None:
    with pytest.raises(TypeError, match=r"nn\.Module or the path of a model file, got function"):
        TorchModel(lambda x: x)  # type: ignore[arg-type]


def test_cuda_without_a_gpu_is_a_config_error(tiny: ResNet) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ConfigError, match="'cuda:0' needs CUDA"):
        TorchModel(tiny, device="cuda:0").setup(InstanceContext(node="m"))


def test_a_dynamic_compile_serves_every_batch_size_with_one_graph(tiny: ResNet) -> None:
    from torchweir.kernels.models.torch_model import DynamicBatch, buckets_for

    compiles: list[int] = []

    def counting(gm: torch.fx.GraphModule, example_inputs: list[Any]) -> Any:
        compiles.append(len(example_inputs))
        return gm.forward

    def run_sizes(module: Any) -> None:
        with torch.inference_mode():
            for size in (2, 3, 5):
                module(torch.randn(size, 3, 32, 32))

    import torch._dynamo

    torch._dynamo.reset()
    run_sizes(DynamicBatch(torch.compile(tiny.eval(), backend=counting, dynamic=False)))
    assert len(compiles) == 1
    compiles.clear()
    torch._dynamo.reset()  # forget the symbolic graph: dynamo caches by code object
    run_sizes(torch.compile(tiny.eval(), backend=counting, dynamic=False))
    assert len(compiles) == 3  # the static compile: one per batch size

    static = TorchModel.from_params({"model": tiny, "compile": "default", "max": 64})
    dynamic = TorchModel.from_params(
        {"model": tiny, "compile": "default", "compile_dynamic": "true", "max": 64}
    )
    assert buckets_for(static) == [1, 2, 4, 8, 16, 32, 64]  # each a compile
    assert len(buckets_for(dynamic)) > len(buckets_for(static))
    assert buckets_for(dynamic)[:3] == [2, 4, 8]  # batch 1 would be a compile of its own
