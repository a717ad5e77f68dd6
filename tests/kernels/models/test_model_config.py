"""Settings of the model kernels: parsing, TOML keys, errors; no model is run here."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from torchweir.errors import ConfigError
from torchweir.kernels import registry
from torchweir.kernels.models import OnnxModel, TorchModel
from torchweir.kernels.models.config import (
    InputShape,
    batch_and_shape,
    parse_floats,
    parse_normalization,
    shape_params,
)


@pytest.fixture
def model_path(tmp_path: Path) -> Path:
    """An existing file: constructors check the path, setup loads it."""
    path = tmp_path / "model.pt2"
    path.write_bytes(b"")
    return path


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("123.675, 116.28, 103.53", (123.675, 116.28, 103.53)),
        ("1 2,3", (1.0, 2.0, 3.0)),
        (255, (255.0,)),
        ([0.5, 1], (0.5, 1.0)),
        (None, None),
        ("  ", None),
    ],
)
def test_floats_parse_torchpipe_strings_numbers_and_lists(value: object, expected: object) -> None:
    assert parse_floats("mean", value) == expected


@pytest.mark.parametrize("value", ["1, x", "nan", [True], {"a": 1}, []])
def test_bad_floats_name_the_key_and_value(value: object) -> None:
    with pytest.raises(ConfigError, match=r"key 'mean'.*expected numbers") as info:
        parse_floats("mean", value)
    assert repr(value) in str(info.value)


def test_normalization_fills_a_missing_side_and_broadcasts_one_value() -> None:
    assert parse_normalization(None, None) is None
    only_mean = parse_normalization("1,2,3", None)
    assert only_mean is not None
    assert only_mean.std == (1.0, 1.0, 1.0)
    assert only_mean.channels == 3
    one = parse_normalization(127.5, 127.5)
    assert one is not None
    assert one.channels is None


def test_normalization_rejects_mismatched_lengths_and_zero_std() -> None:
    with pytest.raises(ConfigError, match="mean has 3 values but std has 2"):
        parse_normalization("1,2,3", "1,2")
    with pytest.raises(ConfigError, match="std must not be 0"):
        parse_normalization("1,2,3", "1,0,1")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("4x3x224x224", (4, (3, 224, 224))),
        (" 8 ", (8, ())),
        (16, (16, ())),
        (None, (None, ())),
    ],
)
def test_max_is_a_batch_size_or_a_shape(value: object, expected: object) -> None:
    assert batch_and_shape("max", value) == expected


@pytest.mark.parametrize("value", ["4x3x224x224,4x10", "1x3;4x3", "4x0", "4xa", 0, True])
def test_bad_max_names_the_value(value: object) -> None:
    with pytest.raises(ConfigError, match="key 'max'") as info:
        batch_and_shape("max", value)
    assert repr(value) in str(info.value)


def test_input_shape_ranges_accept_and_describe() -> None:
    exact = InputShape.parse("3x224x224")
    assert exact is not None
    assert exact.accepts((3, 224, 224))
    assert not exact.accepts((3, 224, 225))
    assert not exact.accepts((1, 3, 224, 224))  # the batch dim is stripped by the caller
    assert str(exact) == "3x224x224"
    ranged = InputShape.parse("3x224x224", "3x112x112")
    assert ranged is not None
    assert ranged.accepts((3, 160, 200))
    assert not ranged.accepts((3, 100, 200))
    assert str(ranged) == "3x(112..224)x(112..224)"
    assert str(InputShape(low=(3, 1), high=(3, None))) == "3x?"
    assert InputShape.parse("") is None
    with pytest.raises(ConfigError, match="min_input_shape within input_shape 3x224x224"):
        InputShape.parse("3x224x224", "3x300x300")


def test_node_max_shape_becomes_batch_limit_and_input_shape() -> None:
    assert shape_params({"max": "4x3x224x224"}) == {"max_batch": 4, "input_shape": (3, 224, 224)}
    assert shape_params({"max": "4x3x224x224", "min": "1x3x112x112"}) == {
        "max_batch": 4,
        "input_shape": (3, 224, 224),
        "min_input_shape": (3, 112, 112),
    }
    assert shape_params({"max": 4, "min": 1}) == {"max_batch": 4, "input_shape": ()}
    with pytest.raises(ConfigError, match="max gives input shape 3x224x224 but input_shape"):
        shape_params({"max": "4x3x224x224", "input_shape": "3x112x112"})


def test_torch_model_from_node_keys(model_path: Path) -> None:
    kernel = registry.create_kernel(
        "TorchModel",
        {
            "model": str(model_path),
            "max": "4x3x224x224",
            "precision": "FP16",
            "mean": "123.675, 116.28, 103.53",
            "std": "58.395, 57.12, 57.375",
            "device_id": "-1",
            "instance_num": 2,
            "resize_h": 224,  # another backend's key: ignored, as in torchpipe
        },
    )
    assert isinstance(kernel, TorchModel)
    assert kernel.max_batch == 4
    assert kernel.precision == "fp16"
    assert kernel.device == "cpu"
    assert str(kernel.config.shape) == "3x224x224"
    assert kernel.config.normalization is not None
    assert kernel.config.normalization.std == (58.395, 57.12, 57.375)
    on_gpu = TorchModel.from_params({"model": str(model_path), "device_id": 1})
    assert on_gpu.device == "cuda:1"  # the runtime then binds its instances to GPU 1


def test_onnx_model_from_node_keys(model_path: Path) -> None:
    kernel = registry.create_kernel(
        "OnnxModel", {"model": str(model_path), "max": 8, "providers": "cpu"}
    )
    assert isinstance(kernel, OnnxModel)
    assert kernel.max_batch == 8
    assert kernel.providers == ("CPUExecutionProvider",)


@pytest.mark.parametrize("kernel", [TorchModel, OnnxModel])
def test_missing_model_key_or_file_is_a_config_error(
    kernel: type[TorchModel], tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match=r"key 'model'.*needs model ="):
        kernel.from_params({"max": 4})
    missing = tmp_path / "nope.onnx"
    with pytest.raises(ConfigError, match=r"key 'model'.*does not exist") as info:
        kernel.from_params({"model": str(missing)})
    assert str(missing) in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"precision": "fp64"}, "key 'precision'.*fp32, fp16, bf16, got 'fp64'"),
        ({"device": "gpu0"}, "key 'device'.*got 'gpu0'"),
        ({"max_batch": 0}, "key 'max'.*got 0"),
        ({"input_shape": "3xax2"}, "key 'input_shape'.*got '3xax2'"),
    ],
)
def test_bad_settings_name_key_and_value(
    model_path: Path, kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        TorchModel(model_path, **kwargs)  # type: ignore[arg-type]


def test_registering_the_model_kernels_imports_neither_torch_nor_onnxruntime(
    model_path: Path,
) -> None:
    code = (
        "import sys\n"
        "from torchweir.kernels.models import OnnxModel, TorchModel\n"
        f"TorchModel({str(model_path)!r}, mean='1,2,3', std='4,5,6', max_batch=4)\n"
        f"OnnxModel({str(model_path)!r})\n"
        "heavy = sorted({'torch', 'onnxruntime'} & set(sys.modules))\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
