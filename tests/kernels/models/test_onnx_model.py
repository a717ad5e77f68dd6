"""OnnxModel: same contract as TorchModel, on onnxruntime sessions."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import onnxruntime
import pytest
import torch
from tests.kernels.models.conftest import MEAN, SIZE, STD, images, legacy_onnx, run

from torchweir.errors import ConfigError, InputError
from torchweir.kernels.base import InstanceContext
from torchweir.kernels.models import OnnxModel, TorchModel
from torchweir.kernels.models.resnet import ResNet


def test_outputs_match_torch_model(tiny: ResNet, tiny_onnx: Path) -> None:
    data = images(5)
    expected, _ = run(TorchModel(tiny, mean=MEAN, std=STD), data)
    items, outcome = run(OnnxModel(tiny_onnx, mean=MEAN, std=STD, providers="cpu"), data)
    assert outcome is None
    for got, want in zip(items, expected, strict=True):
        assert got["result"].shape == (1, 10)
        assert got["result"].dtype == torch.float32
        torch.testing.assert_close(got["result"], want["result"], rtol=1e-4, atol=1e-4)


def test_the_model_input_shape_rejects_other_items(tiny_onnx: Path) -> None:
    """No input_shape given: the ONNX file's own (3x32x32) is enforced."""
    good = images(2)
    items, outcome = run(OnnxModel(tiny_onnx), [good[0], images(1, size=16)[0], good[1]])
    assert outcome is not None
    assert outcome[0] is None
    assert outcome[2] is None
    assert isinstance(outcome[1], InputError)
    assert f"does not fit the model's input 3x{SIZE}x{SIZE}" in str(outcome[1])
    assert "result" not in items[1]


def test_batches_over_max_and_a_fixed_model_batch(tiny: ResNet, tmp_path: Path) -> None:
    """A model exported for exactly 2 items runs 3 items as 2 + 1 padded to 2."""
    fixed = legacy_onnx(tiny, tmp_path / "fixed.onnx", dynamic=False, batch=2)
    data = images(3)
    expected, _ = run(TorchModel(tiny), data)
    kernel = OnnxModel(fixed, max_batch=8)
    instance = kernel.setup(InstanceContext(node="m"))
    assert instance.max_batch == 2
    items, outcome = run(instance, data)
    assert outcome is None
    for got, want in zip(items, expected, strict=True):
        torch.testing.assert_close(got["result"], want["result"], rtol=1e-4, atol=1e-4)


def test_sessions_share_the_cpus_between_instances(tiny_onnx: Path) -> None:
    instance = OnnxModel(tiny_onnx).setup(InstanceContext(node="m", index=1, instance_num=2))
    options = instance.session.get_session_options()  # type: ignore[attr-defined]
    assert options.intra_op_num_threads == max(1, (os.cpu_count() or 1) // 2)


def test_unknown_provider_lists_the_available_ones(tiny_onnx: Path) -> None:
    with pytest.raises(ConfigError, match=r"key 'providers'.*no 'NopeExecutionProvider'") as info:
        OnnxModel(tiny_onnx, providers="NopeExecutionProvider").setup(InstanceContext(node="m"))
    assert "CPUExecutionProvider" in str(info.value)


def test_a_file_onnxruntime_cannot_load_is_a_config_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a protobuf")
    with pytest.raises(ConfigError, match=r"key 'model'.*onnxruntime cannot load"):
        OnnxModel(junk).setup(InstanceContext(node="m"))


def test_input_shape_of_another_rank_is_a_config_error(tiny_onnx: Path) -> None:
    with pytest.raises(ConfigError, match="input_shape 32x32 has 2 dimensions"):
        OnnxModel(tiny_onnx, input_shape="32x32").setup(InstanceContext(node="m"))


def test_missing_onnxruntime_names_the_install_command(
    tiny_onnx: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # makes `import onnxruntime` fail
    with pytest.raises(ConfigError, match="pip install onnxruntime"):
        OnnxModel(tiny_onnx).setup(InstanceContext(node="m"))
    assert onnxruntime.get_available_providers()  # the real module is untouched
