"""The seeded ResNets, the export helpers and examples/resnet50/export.py."""

from __future__ import annotations

import contextlib
import importlib.util
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
import torch
from tests.kernels.models.conftest import MEAN, SIZE, STD, images, run

from torchweir.kernels.models import OnnxModel, TorchModel
from torchweir.kernels.models.export import export_model
from torchweir.kernels.models.resnet import ResNet, export_resnet50, resnet50, resnet_tiny

SCRIPT = Path(__file__).parents[3] / "examples" / "resnet50" / "export.py"


@contextlib.contextmanager
def quiet_exporters() -> Iterator[None]:
    """Ignore the deprecation of torch.jit, and a FutureWarning that torch.onnx's
    torch.export-based exporter raises inside torch 2.13 itself."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "`torch.jit.", DeprecationWarning)
        warnings.filterwarnings("ignore", "`isinstance\\(treespec, LeafSpec\\)`", FutureWarning)
        yield


def normalised(data: list[torch.Tensor]) -> torch.Tensor:
    mean = torch.tensor([123.675, 116.28, 103.53]).view(1, 3, 1, 1)
    std = torch.tensor([58.395, 57.12, 57.375]).view(1, 3, 1, 1)
    return (torch.cat(data).float() - mean) / std


def smooth(n: int, size: int) -> list[torch.Tensor]:
    """Photo-like uint8 images: large smooth regions rather than pixel noise."""
    coarse = torch.rand(n, 3, 4, 4, generator=torch.Generator().manual_seed(7)) * 255
    fine = torch.nn.functional.interpolate(coarse, size=size, mode="bilinear")
    return list(fine.round().to(torch.uint8).split(1))


def assert_plausible_logits(model: ResNet, data: list[torch.Tensor], classes: int) -> None:
    with torch.inference_mode():
        logits = model(normalised(data))
    assert logits.shape == (len(data), classes)
    assert torch.isfinite(logits).all()
    spread = logits.std(dim=1)
    assert ((spread > 0.3) & (spread < 30)).all(), spread
    assert (logits[0] - logits[1]).abs().max() > 0.1  # different images, different logits


def test_tiny_is_seeded_eval_and_plausible() -> None:
    model = resnet_tiny(0)
    assert not model.training
    same = resnet_tiny(0)
    other = resnet_tiny(1)
    x = normalised(images(2))
    with torch.inference_mode():
        torch.testing.assert_close(model(x), same(x), rtol=0, atol=0)
        assert (model(x) - other(x)).abs().max() > 0.1
    assert_plausible_logits(model, images(4), 10)
    assert_plausible_logits(model, smooth(4, SIZE), 10)


def test_resnet50_has_torchvisions_layout() -> None:
    model = ResNet([3, 4, 6, 3])
    state = model.state_dict()
    assert sum(p.numel() for p in model.parameters()) == 25_557_032  # torchvision's count
    assert state["conv1.weight"].shape == (64, 3, 7, 7)
    assert state["layer1.0.downsample.0.weight"].shape == (256, 64, 1, 1)
    assert state["layer2.0.conv2.weight"].shape == (128, 128, 3, 3)  # stride on the 3x3
    assert state["layer4.2.bn3.running_var"].shape == (2048,)
    assert state["fc.weight"].shape == (1000, 2048)
    assert len([k for k in state if k.endswith(".conv1.weight")]) == 16  # 3 + 4 + 6 + 3


@pytest.mark.slow
def test_resnet50_logits_are_plausible() -> None:
    model = resnet50(0)
    assert_plausible_logits(model, images(3, size=224), 1000)
    assert_plausible_logits(model, smooth(3, 224), 1000)


def test_export_rejects_unknown_formats_and_single_item_examples(tmp_path: Path) -> None:
    tiny = resnet_tiny(0)
    with pytest.raises(ValueError, match=r"unknown export formats \['tflite'\]"):
        export_model(tiny, torch.zeros(2, 3, 8, 8), tmp_path, "m", formats=["tflite"])
    with pytest.raises(ValueError, match="at least 2 items, got shape"):
        export_model(tiny, torch.zeros(1, 3, 8, 8), tmp_path, "m")


@pytest.mark.filterwarnings("ignore:`torch.jit.trace:DeprecationWarning")
def test_export_keeps_existing_files_unless_forced(tmp_path: Path) -> None:
    tiny = resnet_tiny(0)
    path = tmp_path / "m.pt"
    path.write_bytes(b"old")
    example = torch.zeros(2, 3, SIZE, SIZE)
    assert export_model(tiny, example, tmp_path, "m", formats=["pt"]) == {"pt": path}
    assert path.read_bytes() == b"old"
    written: list[Path] = []
    export_model(
        tiny,
        example,
        tmp_path,
        "m",
        formats=["pt"],
        force=True,
        progress=lambda p, seconds: written.append(p),
    )
    assert written == [path]
    assert path.read_bytes() != b"old"


def test_a_failed_export_leaves_no_file(tmp_path: Path) -> None:
    class Broken(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("cannot trace me")

    with pytest.raises(Exception, match="cannot trace me"):
        export_model(Broken(), torch.zeros(2, 3), tmp_path, "m", formats=["pt2"])
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_every_exported_format_loads_and_agrees(tmp_path: Path) -> None:
    tiny = resnet_tiny(0)
    with quiet_exporters():
        paths = export_model(tiny, torch.zeros(2, 3, SIZE, SIZE), tmp_path, "tiny")
        assert sorted(paths) == ["onnx", "pt", "pt2"]
        assert_files_agree(tiny, paths, images(3), tolerance=1e-4)


@pytest.mark.slow
def test_export_resnet50_writes_loadable_files_once(tmp_path: Path) -> None:
    with quiet_exporters():
        paths = export_resnet50(tmp_path, seed=0)
        stamps = {fmt: path.stat().st_mtime_ns for fmt, path in paths.items()}
        assert export_resnet50(tmp_path, seed=0) == paths
        assert {fmt: path.stat().st_mtime_ns for fmt, path in paths.items()} == stamps
        assert_files_agree(resnet50(0), paths, images(2, size=224), tolerance=1e-3)


def assert_files_agree(
    model: ResNet, paths: dict[str, Path], data: list[torch.Tensor], tolerance: float
) -> None:
    expected, _ = run(TorchModel(model, mean=MEAN, std=STD), data)
    for fmt, path in paths.items():
        kind = OnnxModel if fmt == "onnx" else TorchModel
        items, outcome = run(kind(path, mean=MEAN, std=STD), data)
        assert outcome is None, fmt
        for got, want in zip(items, expected, strict=True):
            torch.testing.assert_close(
                got["result"], want["result"], rtol=tolerance, atol=tolerance
            )


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("resnet50_export", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_export_script_skips_existing_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for fmt in ("onnx", "pt", "pt2"):
        (tmp_path / f"resnet50.{fmt}").write_bytes(b"x")
    assert load_script().main(["--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.count("exists, skipped") == 3
    assert "built ResNet-50" not in out
