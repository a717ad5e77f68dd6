"""The small examples run and print what they promise."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

import torchweir as tw

EXAMPLES = Path(__file__).parents[2] / "examples"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_custom_kernels(capsys: pytest.CaptureFixture[str]) -> None:
    requests = load("custom_kernel").main()
    assert requests[0]["result"] == 3
    assert requests[0]["longest"] == "requests"
    assert "result" not in requests[1]
    assert isinstance(requests[1]["error"], tw.KernelError)
    assert requests[1]["error"].node == "normalize"
    assert requests[2]["result"] == 1
    assert capsys.readouterr().out.count("\n") == 3


def test_dag_joins_both_branches() -> None:
    results = load("dag").main()
    assert len(results) == 3
    for result in results:
        assert result["thumbnail"] == (64, 64, 3)
        assert 0 <= result["mean"] <= 255
        assert result["std"] > 0
