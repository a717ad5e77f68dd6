"""Small models and exported files shared by the model-kernel tests."""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from torchweir.kernels.models.export import export_model
from torchweir.kernels.models.resnet import ResNet, resnet_tiny

MEAN = "123.675, 116.28, 103.53"
STD = "58.395, 57.12, 57.375"
SIZE = 32


def images(n: int, seed: int = 0, size: int = SIZE) -> list[torch.Tensor]:
    """``n`` different uint8 ``1x3xSxS`` images."""
    generator = torch.Generator().manual_seed(seed)
    return [
        torch.randint(0, 256, (1, 3, size, size), dtype=torch.uint8, generator=generator)
        for _ in range(n)
    ]


def run(kernel: Any, data: list[Any]) -> tuple[list[dict[str, Any]], Any]:
    """``kernel.forward`` over fresh items; returns the items and the outcome."""
    items = [{"data": x} for x in data]
    return items, kernel.forward(items)


def manual(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """What a fused mean/std model must compute, done by hand."""
    mean = torch.tensor([123.675, 116.28, 103.53]).view(1, 3, 1, 1)
    std = torch.tensor([58.395, 57.12, 57.375]).view(1, 3, 1, 1)
    with torch.inference_mode():
        out: torch.Tensor = model((x.float() - mean) / std)
        return out


class Recording(torch.nn.Module):
    """Wraps a function of the batch; records the batch sizes it was called with."""

    def __init__(self, fn: Callable[[torch.Tensor], Any] = lambda x: x.flatten(1).sum(1, True)):
        super().__init__()
        self.fn = fn
        self.sizes: list[int] = []
        self.lock = threading.Lock()

    def forward(self, x: torch.Tensor) -> Any:
        with self.lock:
            self.sizes.append(len(x))
        return self.fn(x)


@pytest.fixture(scope="session")
def tiny() -> ResNet:
    return resnet_tiny(0)


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tiny")


@pytest.fixture(scope="session")
def tiny_pt(tiny: ResNet, tiny_dir: Path) -> Path:
    """``tiny.pt``, TorchScript, written by export_model."""
    with warnings.catch_warnings():  # torch.jit.trace is deprecated; loading is what's tested
        warnings.filterwarnings("ignore", "`torch.jit", DeprecationWarning)
        return export_model(tiny, torch.zeros(2, 3, SIZE, SIZE), tiny_dir, "tiny", formats=["pt"])[
            "pt"
        ]


@pytest.fixture(scope="session")
def tiny_pt2(tiny: ResNet, tiny_dir: Path) -> Path:
    """``tiny.pt2``, a torch.export archive, written by export_model (the first
    torch.export in a process takes a second or two)."""
    return export_model(tiny, torch.zeros(2, 3, SIZE, SIZE), tiny_dir, "tiny", formats=["pt2"])[
        "pt2"
    ]


@pytest.fixture(scope="session")
def tiny_onnx(tiny: ResNet, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``tiny.onnx`` with a dynamic batch, by the fast TorchScript-based exporter (the
    torch.export-based one that export_model uses takes seconds; see test_resnet.py)."""
    return legacy_onnx(tiny, tmp_path_factory.mktemp("onnx") / "tiny.onnx", dynamic=True)


def legacy_onnx(module: torch.nn.Module, path: Path, *, dynamic: bool, batch: int = 2) -> Path:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        torch.onnx.export(
            module,
            (torch.zeros(batch, 3, SIZE, SIZE),),
            path,
            dynamo=False,
            input_names=["input"],
            output_names=["output"],
            dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}} if dynamic else None,
        )
    return path
