from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from tests.helpers import Recorder, recording_kernel

import torchweir as tw


def graph(kernel: tw.Kernel) -> tw.Graph:
    g = tw.Graph()
    g.node("square", kernel)
    return g


def square(x: int) -> int:
    if x < 0:
        raise ValueError(f"negative {x}")
    return x * x


def test_values_dicts_and_lists() -> None:
    with tw.pipe(graph(recording_kernel(Recorder(), square, max=8))) as pipe:
        assert pipe(3) == 9
        request = {"data": 4}
        assert pipe(request) is None
        assert request == {"data": 4, "result": 16}
        batch = [{"data": 1}, {"data": -2}, {"data": 3}]
        pipe(batch)
        assert batch[0]["result"] == 1
        assert batch[2]["result"] == 9
        assert "result" not in batch[1]
        assert isinstance(batch[1]["error"], tw.KernelError)
        with pytest.raises(tw.KernelError, match="negative -5"):
            pipe({"data": -5})
        with pytest.raises(TypeError, match=r"pipe\(list\) takes request dicts, got int"):
            pipe([1, 2])


def test_works_from_32_threads_at_once_and_batches_their_requests() -> None:
    seen = Recorder()
    barrier = threading.Barrier(32)

    def client(pipe: tw.Pipe, k: int) -> list[Any]:
        barrier.wait()
        out = []
        for i in range(50):
            x = k * 1000 + i
            request = {"data": x}
            pipe(request)
            out.append((x, request["result"], pipe(x)))
        return out

    kernel = recording_kernel(seen, square, max=32)
    with tw.pipe(graph(kernel)) as pipe, ThreadPoolExecutor(32) as pool:
        results = list(pool.map(lambda k: client(pipe, k), range(32)))
    rows = [row for per_thread in results for row in per_thread]
    assert len(rows) == 32 * 50
    assert all(r == x * x and v == x * x for x, r, v in rows)
    assert max(seen.sizes) > 1, "concurrent pipe() calls share batches"
    assert len(seen.items) == 2 * 32 * 50


def test_close_is_idempotent_and_later_calls_fail() -> None:
    pipe = tw.pipe(graph(recording_kernel(Recorder(), square)))
    assert pipe(2) == 4
    assert pipe.runtime.state is tw.RuntimeState.RUNNING
    pipe.close()
    pipe.close()
    assert pipe.runtime.state is tw.RuntimeState.CLOSED


def test_a_failing_start_stops_the_loop_thread() -> None:
    class Broken(tw.Kernel):
        def setup(self, ctx: tw.InstanceContext) -> tw.Kernel:
            raise RuntimeError("no GPU")

    before = threading.active_count()
    with pytest.raises(tw.ConfigError, match="no GPU"):
        tw.pipe(graph(Broken()))
    assert threading.active_count() == before
