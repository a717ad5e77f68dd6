from __future__ import annotations

import asyncio
import signal
from typing import Any

import numpy as np
import pytest

import torchweir as tw
from torchweir import bench
from torchweir.bench import BenchResult, RuntimeTarget, ThreadTarget


def doubling() -> tw.Graph:
    @tw.kernel(max=16)
    def double(batch: list[int]) -> list[Any]:
        return [ValueError("negative") if x < 0 else 2 * x for x in batch]

    g = tw.Graph()
    g.node("double", double, instance_num=2)
    return g


class Interrupting:
    """Presses Ctrl-C (or raises ``KeyboardInterrupt``) in its ``after``-th call."""

    def __init__(self, name: str, after: int, action: str) -> None:
        self.name = name
        self.after = after
        self.action = action
        self.calls = 0
        self.opened = self.closed = 0

    async def open(self) -> None:
        self.opened += 1

    async def call(self, items: list[Any]) -> list[Any]:
        self.calls += 1
        if self.calls == self.after:
            if self.action == "raise":
                raise KeyboardInterrupt
            signal.raise_signal(signal.SIGINT)  # Ctrl-C, delivered to this (main) thread
        await asyncio.sleep(0)  # like any real target, let the loop run
        return items

    async def close(self) -> None:
        self.closed += 1


def test_run_measures_each_target_at_each_load_in_one_result() -> None:
    targets = [RuntimeTarget(doubling(), name="tw"), ThreadTarget(lambda x: 2 * x)]
    result = bench.run(
        targets, [1, 2, -3], clients=[1, 4], requests=60, warmup=0.05, progress=False
    )
    assert [(p.target, p.clients) for p in result.points] == [
        ("tw", 1),
        ("tw", 4),
        ("naive", 1),
        ("naive", 4),
    ]
    tw_points = [p for p in result.points if p.target == "tw"]
    assert all(p.stats.errors_by_type == {"KernelError(ValueError)": 20} for p in tw_points)
    assert all(p.stats.requests == 40 for p in tw_points)
    assert all(p.stats.requests == 60 and p.stats.errors == 0 for p in result.points[2:])
    assert all(sum(b.count for b in p.histogram) == p.stats.requests for p in result.points)
    assert not result.interrupted
    assert result.args["clients"] == [1, 4]
    assert result.args["requests"] == 60
    assert result.args["seconds"] is None
    assert result.machine["cpu_count"] >= 1
    assert result.targets == ["tw", "naive"]


def test_run_with_a_rate_makes_open_loop_points() -> None:
    result = bench.run(
        RuntimeTarget(doubling()), [1], rate=[100, 300], seconds=0.3, warmup=0, progress=False
    )
    assert [p.rate_per_s for p in result.points] == [100.0, 300.0]
    assert [p.load for p in result.points] == ["100/s", "300/s"]
    assert all(p.clients is None for p in result.points)
    assert result.points[1].stats.requests > result.points[0].stats.requests


def test_a_keyboard_interrupt_keeps_the_points_measured_so_far() -> None:
    first = Interrupting("first", after=10**9, action="raise")
    second = Interrupting("second", after=30, action="raise")
    third = Interrupting("third", after=10**9, action="raise")
    result = bench.run(
        [first, second, third], [0], clients=[2, 3], requests=20, warmup=0, progress=False
    )
    assert result.interrupted
    assert [(p.target, p.clients, p.interrupted) for p in result.points] == [
        ("first", 2, False),
        ("first", 3, False),
        ("second", 2, False),
        ("second", 3, True),  # cut short in its 10th of 20 calls
    ]
    assert result.points[-1].stats.requests == 9
    assert (second.opened, second.closed) == (1, 1)
    assert third.opened == 0


def test_ctrl_c_stops_the_run_and_restores_the_sigint_handler() -> None:
    before = signal.getsignal(signal.SIGINT)
    target = Interrupting("t", after=25, action="signal")
    result = bench.run(target, [0], clients=[1, 2], seconds=30.0, warmup=0, progress=False)
    assert signal.getsignal(signal.SIGINT) is before
    assert result.interrupted
    assert [(p.clients, p.interrupted) for p in result.points] == [(1, True)]
    assert 25 <= result.points[0].stats.requests <= 27  # the handler runs on the next turn
    assert target.closed == 1


def test_percentiles_in_a_result_match_numpy_on_its_latencies() -> None:
    recorded: list[np.ndarray] = []
    original = bench.api.LatencyRecorder.summary  # type: ignore[attr-defined]

    def spy(self: Any, *args: Any, **kwargs: Any) -> Any:
        recorded.append(self.latencies_s)
        return original(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(bench.api.LatencyRecorder, "summary", spy)  # type: ignore[attr-defined]
        result = bench.run(
            RuntimeTarget(doubling()), [1], clients=[8], requests=500, warmup=0, progress=False
        )
    (stats,) = [p.stats for p in result.points]
    (lat,) = recorded
    assert lat.size == stats.requests == 500
    assert [stats.p50_ms, stats.p90_ms, stats.p99_ms] == list(
        1e3 * np.percentile(lat, [50, 90, 99])
    )


def test_json_round_trips_exactly() -> None:
    result = bench.run(
        ThreadTarget(lambda x: x), [b"x"], clients=[2], requests=30, warmup=0, progress=False
    )
    assert bench.from_json(bench.to_json(result)) == result
    assert isinstance(result, BenchResult)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"clients": [0]}, "clients must be one or more integers >= 1"),
        ({"rate": -5.0}, "rate must be one or more positive"),
        ({"inputs": []}, "at least one input"),
        ({"seconds": None}, "give seconds or requests"),
        ({"warmup": -1.0}, "warmup must be >= 0 seconds"),
        ({"request_batch": 0}, "request_batch must be >= 1"),
        ({"rate": 10.0, "max_outstanding": 0}, "max_outstanding must be >= 1"),
    ],
)
def test_bad_settings_fail_before_anything_runs(kwargs: dict[str, Any], message: str) -> None:
    target = Interrupting("t", after=1, action="raise")
    inputs = kwargs.pop("inputs", [1])
    kwargs.setdefault("warmup", 0.0)
    with pytest.raises(ValueError, match=message):
        bench.run(target, inputs, progress=False, **kwargs)
    assert target.opened == 0


def test_targets_need_distinct_names() -> None:
    with pytest.raises(ValueError, match="distinct names"):
        bench.run([ThreadTarget(abs), ThreadTarget(abs)], [1], progress=False)
