from __future__ import annotations

import asyncio
import itertools
import random
import threading
import time
from typing import Any

import numpy as np
import pytest

import torchweir as tw
from torchweir.bench import RuntimeTarget, ThreadTarget
from torchweir.bench.load import (
    Feed,
    Phase,
    PoissonSchedule,
    Window,
    closed_loop,
    open_loop,
)


class FakeTime:
    """A clock that only moves when a target or the fake ``sleep`` moves it."""

    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.now += max(delay, 0.0)
        await asyncio.sleep(0)


class Stepping:
    """A target whose every call takes ``step_s`` of fake time, blocking the loop."""

    name = "stepping"

    def __init__(self, time: FakeTime, step_s: float, fail: int | None = None) -> None:
        self.time = time
        self.step_s = step_s
        self.calls: list[list[Any]] = []
        self.fail = fail

    async def open(self) -> None:
        pass

    async def call(self, items: list[Any]) -> list[Any]:
        self.calls.append(items)
        self.time.now += self.step_s
        if self.fail is not None and len(self.calls) > self.fail:
            raise KeyboardInterrupt
        return items

    async def close(self) -> None:
        pass


def every_third_fails() -> tw.Graph:
    @tw.kernel(max=8)
    def third(batch: list[int]) -> list[Any]:
        return [ValueError(f"{x} % 3 == 2") if x % 3 == 2 else x for x in batch]

    g = tw.Graph()
    g.node("third", third, instance_num=2)
    return g


def arrivals(rate: float, seed: int, start: float, end: float) -> int:
    schedule, n = PoissonSchedule(rate, random.Random(seed), start), 0
    while schedule.next() < end:
        n += 1
    return n


# -- the pure parts ---------------------------------------------------------------------


def test_feed_cycles_the_inputs_in_order_k_per_call() -> None:
    feed = Feed(["a", "b", "c"], request_batch=2)
    assert [feed.take() for _ in range(4)] == [["a", "b"], ["c", "a"], ["b", "c"], ["a", "b"]]
    with pytest.raises(ValueError, match="at least one input"):
        Feed([], 1)
    with pytest.raises(ValueError, match="request_batch must be >= 1"):
        Feed([1], 0)


def test_window_warms_up_then_measures_for_seconds_or_requests() -> None:
    timed = Window(start=10.0, warmup_s=1.0, seconds=2.0, requests=None)
    phases = [timed.admit(t) for t in (10.0, 10.99, 11.0, 12.99, 13.0)]
    assert phases == [Phase.WARMUP, Phase.WARMUP, Phase.MEASURE, Phase.MEASURE, Phase.STOP]
    counted = Window(start=0.0, warmup_s=0.0, seconds=None, requests=2)
    assert [counted.admit(5.0) for _ in range(3)] == [Phase.MEASURE, Phase.MEASURE, Phase.STOP]
    with pytest.raises(ValueError, match="seconds or requests"):
        Window(0.0, 0.0, 1.0, 5)
    with pytest.raises(ValueError, match="warmup must be >= 0"):
        Window(0.0, -1.0, 1.0, None)


def test_poisson_schedule_is_seeded_and_has_the_requested_rate() -> None:
    a = PoissonSchedule(500.0, random.Random(3), start=1.0)
    b = PoissonSchedule(500.0, random.Random(3), start=1.0)
    times = [a.next() for _ in range(20_000)]
    assert times == [b.next() for _ in range(20_000)]
    assert all(t1 > t0 for t0, t1 in itertools.pairwise(times))
    assert (len(times) - 1) / (times[-1] - times[0]) == pytest.approx(500.0, rel=0.03)
    with pytest.raises(ValueError, match="positive number of requests/s"):
        PoissonSchedule(0.0, random.Random(), 0.0)


# -- closed loop ------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_closed_loop_measures_after_warmup_with_the_injected_clock() -> None:
    fake = FakeTime()
    target = Stepping(fake, step_s=1 / 64)
    started: list[float] = []
    m = await closed_loop(
        target,
        range(1000),
        clients=1,
        seconds=1.0,
        warmup=0.25,
        clock=fake.clock,
        on_start=lambda: started.append(fake.now),
    )
    assert started == [0.25]
    assert len(target.calls) == 16 + 64  # 0.25 s then 1 s of calls of 1/64 s each
    assert target.calls[16] == [16]  # inputs run on through the warm-up
    assert m.recorder.requests == 64
    assert set(m.recorder.latencies_s.tolist()) == {1 / 64}
    assert m.duration_s == 1.0
    assert not m.interrupted


@pytest.mark.asyncio
async def test_closed_loop_counts_runtime_errors_by_type_not_as_latencies() -> None:
    async with _opened(RuntimeTarget(every_third_fails())) as target:
        m = await closed_loop(target, range(300), clients=4, requests=300)
    r = m.recorder
    assert r.calls == 300
    assert dict(r.errors) == {"KernelError(ValueError)": 100}
    assert r.requests == r.items == 200
    assert r.latencies_s.size == 200
    stats = r.summary(m.duration_s)
    assert stats.p99_ms == 1e3 * np.percentile(r.latencies_s, 99)
    assert 0 < stats.p50_ms <= stats.p90_ms <= stats.p99_ms <= stats.max_ms


@pytest.mark.asyncio
async def test_request_batch_sends_k_items_per_call_and_counts_items() -> None:
    async with _opened(RuntimeTarget(every_third_fails())) as target:
        m = await closed_loop(target, range(12), clients=3, requests=30, request_batch=4)
    r = m.recorder
    # 30 calls of 4 items cycle through 0..11 ten times; items 2, 5, 8, 11 fail each time.
    assert r.calls == 30
    assert r.items == 80
    assert r.error_count == 40
    assert r.requests == 0  # each call of 4 held one failure: no call latency counts
    assert r.summary(m.duration_s).qps == pytest.approx(80 / m.duration_s)


@pytest.mark.asyncio
async def test_requests_past_their_timeout_count_as_deadline_errors() -> None:
    @tw.kernel(max=1)
    def slow(batch: list[int]) -> list[int]:
        time.sleep(0.05)
        return batch

    g = tw.Graph()
    g.node("slow", slow)
    async with _opened(RuntimeTarget(g, timeout=0.01)) as target:
        m = await closed_loop(target, [1], clients=2, requests=4)
    assert dict(m.recorder.errors) == {"DeadlineExceeded": 4}
    assert m.recorder.requests == 0


@pytest.mark.parametrize("loop", ["closed", "open"])
@pytest.mark.asyncio
async def test_a_target_breaking_the_protocol_is_a_bug_not_an_error(loop: str) -> None:
    class Short:
        name = "short"

        async def call(self, items: list[Any]) -> list[Any]:
            return []

    if loop == "closed":
        run = closed_loop(Short(), [1], clients=2, requests=5)
    else:
        run = open_loop(Short(), [1], rate=1000.0, requests=5)
    with pytest.raises(TypeError, match="'short' returned 0 outcomes for 1 items"):
        await run


@pytest.mark.asyncio
async def test_a_thread_target_runs_each_client_on_its_own_thread() -> None:
    seen: set[int] = set()
    barrier = threading.Barrier(4, timeout=10)

    def fn(x: int) -> int:
        seen.add(threading.get_ident())
        barrier.wait()  # only passes if 4 calls run at once
        if x == 3:
            raise KeyError(x)
        return x

    async with _opened(ThreadTarget(fn)) as target:
        m = await closed_loop(target, range(4), clients=4, requests=40)
        assert target.thread_count == 4  # reused: no thread per call, none spare
    assert len(seen) == 4
    assert dict(m.recorder.errors) == {"KeyError": 10}
    assert m.recorder.requests == 30


@pytest.mark.asyncio
async def test_a_keyboard_interrupt_from_the_target_stops_the_point() -> None:
    fake = FakeTime()
    target = Stepping(fake, step_s=0.01, fail=5)
    m = await closed_loop(target, [1], clients=1, seconds=100.0, clock=fake.clock)
    assert m.interrupted
    assert m.recorder.requests == 5
    assert m.duration_s == pytest.approx(0.05)


@pytest.mark.asyncio
async def test_setting_stop_ends_a_closed_loop_and_cancels_stuck_calls() -> None:
    stop = asyncio.Event()
    gate = asyncio.Event()

    class Stuck:
        name = "stuck"

        async def call(self, items: list[Any]) -> list[Any]:
            gate.set()
            await asyncio.Event().wait()  # never returns by itself
            return items

    async def press_ctrl_c() -> None:
        await gate.wait()
        stop.set()

    presser = asyncio.ensure_future(press_ctrl_c())
    m = await closed_loop(Stuck(), [1], clients=2, seconds=100.0, stop=stop, grace_s=0.01)
    await presser
    assert m.interrupted
    assert m.recorder.calls == 0


@pytest.mark.asyncio
async def test_a_target_that_never_suspends_still_lets_stop_through() -> None:
    fake = FakeTime()
    target = Stepping(fake, step_s=0.001)  # returns without ever awaiting
    stop = asyncio.Event()
    asyncio.get_running_loop().call_soon(stop.set)  # "Ctrl-C" on the next loop turn
    m = await closed_loop(target, [0], clients=2, seconds=1e9, clock=fake.clock, stop=stop)
    assert m.interrupted
    assert len(target.calls) <= 2 * 64


# -- open loop --------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_open_loop_sends_on_the_poisson_schedule() -> None:
    fake = FakeTime()
    target = Stepping(fake, step_s=0.0)
    m = await open_loop(
        target,
        range(5),
        rate=200.0,
        seconds=1.0,
        warmup=0.5,
        rng=random.Random(11),
        clock=fake.clock,
        sleep=fake.sleep,
    )
    r = m.recorder
    assert len(target.calls) == arrivals(200.0, 11, 0.0, 1.5)
    assert r.requests == arrivals(200.0, 11, 0.0, 1.5) - arrivals(200.0, 11, 0.0, 0.5)
    assert (r.late, r.dropped_sends) == (0, 0)
    assert set(r.latencies_s.tolist()) == {0.0}  # sent and answered at the scheduled time


@pytest.mark.asyncio
async def test_open_loop_latency_runs_from_the_schedule_and_late_sends_are_counted() -> None:
    fake = FakeTime()
    target = Stepping(fake, step_s=0.02)  # blocks the loop for 20 ms per call at ~5 ms arrivals
    m = await open_loop(
        target,
        [0],
        rate=200.0,
        requests=50,
        rng=random.Random(5),
        clock=fake.clock,
        sleep=fake.sleep,
    )
    # Each call starts when both its time has come and the previous call has let go of
    # the loop: a latency from the *scheduled* time includes that wait.
    schedule = PoissonSchedule(200.0, random.Random(5), start=0.0)
    free, expected, late = 0.0, [], 0
    for _ in range(50):
        scheduled = schedule.next()
        sent = max(free, scheduled)
        late += sent - scheduled > 0.002
        free = sent + 0.02
        expected.append(free - scheduled)
    r = m.recorder
    assert r.requests == 50
    np.testing.assert_allclose(r.latencies_s, expected, rtol=0, atol=1e-9)
    assert r.late == late
    assert late >= 40
    assert r.latencies_s.max() > 0.2  # a send-based latency would stay at 20 ms


@pytest.mark.asyncio
async def test_open_loop_on_the_real_clock_sends_at_the_requested_rate() -> None:
    async with _opened(RuntimeTarget(every_third_fails())) as target:
        t0 = time.perf_counter()
        m = await open_loop(target, [0, 1], rate=200.0, seconds=1.0, rng=random.Random(2))
        wall = time.perf_counter() - t0
    r = m.recorder
    assert r.calls + r.dropped_sends == arrivals(200.0, 2, 0.0, 1.0)
    assert r.dropped_sends == 0
    assert 150 <= r.calls <= 250
    assert 0.9 <= m.duration_s <= 3.0
    assert 0.9 <= wall <= 3.0
    assert r.late <= r.calls // 2  # generous: a loaded CI machine may lag some sends


@pytest.mark.asyncio
async def test_open_loop_drops_arrivals_beyond_max_outstanding() -> None:
    def slow(x: int) -> int:
        time.sleep(0.05)
        return x

    async with _opened(ThreadTarget(slow, threads=2)) as target:
        m = await open_loop(
            target, [0], rate=200.0, seconds=0.5, max_outstanding=4, rng=random.Random(4)
        )
    r = m.recorder
    assert r.calls + r.dropped_sends == arrivals(200.0, 4, 0.0, 0.5)
    assert r.dropped_sends >= r.calls  # 2 threads of 50 ms serve 40/s of the 200/s offered
    assert r.latencies_s.min() >= 0.05


class _opened:
    """``async with _opened(target)``: open it, yield it, close it."""

    def __init__(self, target: Any) -> None:
        self.target = target

    async def __aenter__(self) -> Any:
        await self.target.open()
        return self.target

    async def __aexit__(self, *exc_info: object) -> None:
        await self.target.close()
