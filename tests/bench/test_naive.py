"""The naive baseline built from a graph, and `torchweir bench` with a CONFIG."""

from __future__ import annotations

from pathlib import Path

import pytest

import torchweir as tw
from torchweir.bench.naive import naive_service
from torchweir.cli import main

CHAIN = """
[first]
backend = "tests.dag_kernels:Tag"
suffix = "a"
next = "second"
[second]
backend = "tests.dag_kernels:Tag"
suffix = "b"
fail_on = "bad"
"""


def test_the_naive_service_runs_the_chain_per_request(tmp_path: Path) -> None:
    config = tmp_path / "chain.toml"
    config.write_text(CHAIN)
    serve = naive_service(config)
    assert serve("x") == "xab"
    with pytest.raises(ValueError, match="b refuses 'bada'"):
        serve("bad")


def test_the_naive_service_refuses_graphs_that_are_not_chains() -> None:
    g = tw.Graph()
    root = g.node("root", "Identity")
    root >> [g.node("a", "Identity"), g.node("b", "Identity")]
    with pytest.raises(tw.ConfigError, match=r"node 'root'.*chains of nodes only"):
        naive_service(g)


def test_bench_with_a_config_and_the_naive_baseline(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "chain.toml"
    config.write_text(CHAIN)
    status = main(
        [
            "bench",
            str(config),
            "--input",
            "int",
            "--baseline",
            "naive",
            "--clients",
            "2",
            "--seconds",
            "0.3",
            "--warmup",
            "0.1",
            "--no-progress",
        ]
    )
    out = capsys.readouterr().out
    assert status == 0
    assert "torchweir" in out
    assert "naive" in out
    assert "2 clients" in out


def test_bench_with_a_bad_config_exits_2_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[n]\nbackend = "S[A"\n')
    assert main(["bench", str(config), "--input", "int", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "malformed backend expression" in err
    assert "Traceback" not in err
