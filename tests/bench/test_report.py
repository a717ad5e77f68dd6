from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from torchweir.bench import BenchResult, Point, from_json, plot, table, to_json
from torchweir.bench.report import check_plot
from torchweir.bench.stats import LatencyRecorder
from torchweir.bench.system import Usage
from torchweir.errors import ConfigError


def point(target: str, clients: int | None, rate: float | None, scale_s: float) -> Point:
    recorder = LatencyRecorder()
    for x in np.random.default_rng(clients or 0).lognormal(np.log(scale_s), 0.5, 400):
        recorder.record(float(x), [1])
    recorder.record(0.1, [ValueError("bad")])
    if rate is not None:
        for lag in (0.0, 0.01):
            recorder.sent(lag, tolerance_s=0.002)
        recorder.dropped_sends = 3
    usage = Usage(cpu_percent=42.0)
    return Point(
        target, clients, rate, 1, recorder.summary(2.0, usage), recorder.histogram(), False
    )


def result(open_loop: bool = False, interrupted: bool = False) -> BenchResult:
    loads = [(None, 100.0), (None, 400.0)] if open_loop else [(1, None), (8, None), (64, None)]
    points = tuple(
        point(name, c, r, scale * (1 + k))
        for name, scale in (("torchweir", 0.001), ("naive", 0.004))
        for k, (c, r) in enumerate(loads)
    )
    machine = {"host": "box", "cpu_count": 2, "python": "3.11.7", "loop": "uvloop"}
    args = {"seconds": 2.0, "requests": None, "request_batch": 1}
    return BenchResult(machine, args, points, interrupted, "torchweir bench x.toml")


def test_table_has_a_row_per_point_with_units_and_errors_by_type() -> None:
    text = table(result())
    lines = text.splitlines()
    header = next(line for line in lines if "target" in line)
    for column in ("items/s", "mean ms", "TP50 ms", "TP90 ms", "TP99 ms", "max ms", "CPU %"):
        assert column in header
    assert "late" not in header
    assert "GPU" not in header
    rows = [line for line in lines if "torchweir" in line or "naive" in line]
    assert len(rows) == 6
    assert all("ValueError 1" in row and "42" in row for row in rows)
    assert "64 clients" in text
    assert "1 client " in text
    assert "box: 2 CPUs; Python 3.11.7; uvloop. 2 s per point" in text


def test_open_loop_tables_show_late_and_dropped_sends() -> None:
    text = table(result(open_loop=True, interrupted=True))
    header = next(line for line in text.splitlines() if "target" in line)
    assert "late" in header
    assert "dropped" in header
    assert "lag TP99 ms" in header
    assert "100/s" in text
    assert "400/s" in text
    assert "Interrupted (Ctrl-C)" in text


def test_table_falls_back_to_plain_text_without_rich(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "rich.table", None)
    text = table(result())
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["target", "load", "calls"]
    assert set(lines[1].replace(" ", "")) == {"-"}
    assert len([line for line in lines if line.startswith(("torchweir", "naive"))]) == 6


def test_json_holds_every_point_with_its_histogram_and_round_trips() -> None:
    original = result(open_loop=True)
    data = to_json(original)
    assert b'"lower_s"' in data
    assert b'"p99_ms"' in data
    assert b'"dropped_sends": 3' in data
    back = from_json(data)
    assert back == original
    assert sum(b.count for b in back.points[0].histogram) == 400


@pytest.mark.parametrize("open_loop", [False, True])
def test_plot_writes_a_png(tmp_path: Path, open_loop: bool) -> None:
    pytest.importorskip("matplotlib")
    path = tmp_path / "out" / "bench.png"
    plot(result(open_loop=open_loop), path)
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(data) > 20_000


def test_plot_without_matplotlib_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ConfigError, match="pip install matplotlib"):
        check_plot()
