from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from torchweir.cli import main

FIXTURES = Path(__file__).parent / "graphs" / "fixtures"
DIAMOND = """
[src]
backend = "S[Identity,Identity]"
instance_num = 3
next = "a,b"
[a]
max = 8
batching_timeout = 2
next = "j"
[b]
filter = "or"
next = "j"
[j]
map = "a[result:data],b[result:other]"
"""


@pytest.fixture
def diamond(tmp_path: Path) -> Path:
    path = tmp_path / "diamond.toml"
    path.write_text(DIAMOND)
    return path


def test_check_summarises_nodes_edges_instances_and_batches(
    diamond: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check", str(diamond)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == f"{diamond}: OK, 4 node(s)"
    header = lines[1].split()
    assert header == [
        "node",
        "backend",
        "instances",
        "max",
        "batch",
        "timeout",
        "ms",
        "stream",
        "filter",
        "map",
    ]
    rows = {line.split()[0]: line.split() for line in lines[3:7]}
    assert rows["src"][1:4] == ["S[Identity,Identity]", "3", "1"]
    assert rows["a"][1:5] == ["Identity", "1", "8", "2"]
    assert rows["b"][6] == "or"
    assert "edges: src -> a, src -> b, a -> j, b -> j" in out
    assert "roots: src; requests without node_name enter at: src" in out


@pytest.mark.parametrize(("fmt", "first"), [("mermaid", "flowchart LR"), ("dot", "digraph")])
def test_graph_prints_mermaid_or_dot(
    diamond: Path, capsys: pytest.CaptureFixture[str], fmt: str, first: str
) -> None:
    assert main(["graph", str(diamond), "--format", fmt]) == 0
    assert capsys.readouterr().out.startswith(first)


def test_a_bad_config_exits_non_zero_with_the_message_and_no_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    seed = FIXTURES / "seed_quickstart.toml"
    for command in (["check", str(seed)], ["graph", str(seed)]):
        assert main(command) == 2
        captured = capsys.readouterr()
        assert captured.out == ""
        assert "unknown node 'cpu_posprocess'; did you mean 'cpu_posdecoder'?" in captured.err
        assert "Traceback" not in captured.err


def test_python_dash_m_runs_the_cli(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[n]\nbackend = "S[A"\n')
    done = subprocess.run(
        [sys.executable, "-m", "torchweir", "check", str(bad)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.startswith(f"torchweir: error: file '{bad}', node 'n', key 'backend'")
    assert "Traceback" not in done.stderr
