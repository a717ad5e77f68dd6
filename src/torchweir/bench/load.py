"""Load generators: a closed loop of N clients, and an open loop of Poisson arrivals.

Closed loop: each client sends its next request when the previous one returns, so the
load adapts to the server and measures throughput at a given concurrency.

Open loop: requests arrive at random (Poisson) times fixed in advance, whatever the server
does. A request's latency runs from its *scheduled* time, not from when it was actually
sent: a server that stalls makes every request scheduled during the stall wait, and a
latency measured from the send would hide that wait (coordinated omission). A send more
than ``late_tolerance_s`` behind schedule counts as ``late`` (the generator could not keep
up, so the result understates the load), and an arrival that finds ``max_outstanding``
requests in flight is not sent but counted in ``dropped_sends``.

Both take their time from an injected ``clock`` and measure a window that follows an
unrecorded warm-up. Inputs are cycled in order, ``request_batch`` per call. Setting the
``stop`` event (Ctrl-C) ends the point early; calls in flight get ``grace_s`` to finish.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import math
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from torchweir.bench.stats import LatencyRecorder
from torchweir.bench.targets import Target

__all__ = [
    "Feed",
    "Measurement",
    "Phase",
    "PoissonSchedule",
    "Window",
    "closed_loop",
    "open_loop",
]

Clock = Callable[[], float]
_YIELD_EVERY = 64
Sleep = Callable[[float], Awaitable[None]]


class Phase(enum.Enum):
    WARMUP = "warmup"
    MEASURE = "measure"
    STOP = "stop"


class Window:
    """Which phase a request sent at time ``t`` belongs to (pure; no clock of its own).

    The measured window opens ``warmup_s`` after ``start`` and lasts ``seconds``, or
    admits ``requests`` measured requests, whichever of the two is given.
    """

    def __init__(
        self, start: float, warmup_s: float, seconds: float | None, requests: int | None
    ) -> None:
        _check_window(warmup_s, seconds, requests)
        self.measure_start = start + warmup_s
        self.end = self.measure_start + seconds if seconds is not None else math.inf
        self._left = requests

    def admit(self, t: float) -> Phase:
        if t < self.measure_start:
            return Phase.WARMUP
        if t >= self.end or self._left == 0:
            return Phase.STOP
        if self._left is not None:
            self._left -= 1
        return Phase.MEASURE


def _check_window(warmup_s: float, seconds: float | None, requests: int | None) -> None:
    if not warmup_s >= 0:
        raise ValueError(f"warmup must be >= 0 seconds, got {warmup_s!r}")
    if (seconds is None) == (requests is None):
        raise ValueError(f"give seconds or requests, not both or neither: {seconds=} {requests=}")
    if seconds is not None and not seconds > 0:
        raise ValueError(f"seconds must be > 0, got {seconds!r}")
    if requests is not None and requests < 1:
        raise ValueError(f"requests must be >= 1 calls, got {requests!r}")


class Feed:
    """Hands out the inputs in order, ``request_batch`` per call, cycling at the end."""

    def __init__(self, inputs: Sequence[Any], request_batch: int) -> None:
        if not inputs:
            raise ValueError("a benchmark needs at least one input")
        if request_batch < 1:
            raise ValueError(f"request_batch must be >= 1 items, got {request_batch!r}")
        self._inputs = inputs
        self._k = request_batch
        self._next = 0

    def take(self) -> list[Any]:
        n = len(self._inputs)
        start, self._next = self._next, (self._next + self._k) % n
        return [self._inputs[(start + j) % n] for j in range(self._k)]


class PoissonSchedule:
    """Absolute arrival times of a Poisson process of ``rate`` per second from ``start``."""

    def __init__(self, rate: float, rng: random.Random, start: float) -> None:
        if not (rate > 0 and math.isfinite(rate)):
            raise ValueError(f"rate must be a positive number of requests/s, got {rate!r}")
        self._rate = rate
        self._rng = rng
        self._t = start

    def next(self) -> float:
        self._t += self._rng.expovariate(self._rate)
        return self._t


@dataclasses.dataclass
class Measurement:
    """One point's raw outcome: the recorder and the measured wall time in seconds."""

    recorder: LatencyRecorder
    duration_s: float
    interrupted: bool


class _Run:
    """What the clients of one point share: the target, the clock and the tallies."""

    def __init__(
        self,
        target: Target,
        clock: Clock,
        stop: asyncio.Event | None,
        recorder: LatencyRecorder | None,
        on_start: Callable[[], object] | None,
    ) -> None:
        self.target = target
        self.clock = clock
        self.stop = stop if stop is not None else asyncio.Event()
        self.recorder = recorder if recorder is not None else LatencyRecorder()
        self._on_start = on_start
        self.started = False
        self.last_done: float | None = None

    def measuring(self) -> None:
        if not self.started:
            self.started = True
            if self._on_start is not None:
                self._on_start()

    async def call(self, items: list[Any], since: float, phase: Phase) -> None:
        """One call; its latency runs from ``since``. Outcomes count only when measured."""
        try:
            outcomes = await self.target.call(items)
        except KeyboardInterrupt:  # a target's own Ctrl-C: stop like SIGINT does
            self.stop.set()
            return
        except Exception as exc:
            if phase is Phase.MEASURE:
                self._done()
                self.recorder.fail(exc, len(items))
            return
        if len(outcomes) != len(items):
            raise TypeError(
                f"target {self.target.name!r} returned {len(outcomes)} outcomes "
                f"for {len(items)} items"
            )
        if phase is Phase.MEASURE:
            self.recorder.record(self._done() - since, outcomes)

    def _done(self) -> float:
        self.last_done = self.clock()
        return self.last_done

    def measurement(self, window: Window) -> Measurement:
        end = self.last_done if self.last_done is not None else self.clock()
        return Measurement(self.recorder, max(0.0, end - window.measure_start), self.stop.is_set())


async def closed_loop(
    target: Target,
    inputs: Sequence[Any],
    *,
    clients: int,
    seconds: float | None = None,
    requests: int | None = None,
    request_batch: int = 1,
    warmup: float = 0.0,
    clock: Clock = time.perf_counter,
    stop: asyncio.Event | None = None,
    recorder: LatencyRecorder | None = None,
    on_start: Callable[[], object] | None = None,
    grace_s: float = 1.0,
) -> Measurement:
    """Run ``clients`` concurrent request loops against an open ``target``.

    Args:
        seconds, requests: the measured window: a duration, or a number of calls.
        warmup: unrecorded seconds of the same load first.
        stop: set it to end early (the result is then marked interrupted).
        recorder: pass one to watch live counts (progress bars).
        on_start: called once, when the measured window opens.
    """
    if clients < 1:
        raise ValueError(f"clients must be >= 1, got {clients!r}")
    feed = Feed(inputs, request_batch)
    run = _Run(target, clock, stop, recorder, on_start)
    window = Window(clock(), warmup, seconds, requests)

    async def client() -> None:
        calls = 0
        while not run.stop.is_set():
            now = clock()
            phase = window.admit(now)
            if phase is Phase.STOP:
                return
            if phase is Phase.MEASURE:
                run.measuring()
            await run.call(feed.take(), now, phase)
            calls += 1
            if calls % _YIELD_EVERY == 0:  # a target that never suspends would starve the
                await asyncio.sleep(0)  # loop: no Ctrl-C, no progress, no other client

    tasks: set[asyncio.Future[Any]] = {asyncio.ensure_future(client()) for _ in range(clients)}
    await _join(tasks, run.stop, grace_s)
    return run.measurement(window)


async def open_loop(
    target: Target,
    inputs: Sequence[Any],
    *,
    rate: float,
    seconds: float | None = None,
    requests: int | None = None,
    request_batch: int = 1,
    warmup: float = 0.0,
    max_outstanding: int = 10_000,
    late_tolerance_s: float = 0.002,
    rng: random.Random | None = None,
    clock: Clock = time.perf_counter,
    sleep: Sleep = asyncio.sleep,
    stop: asyncio.Event | None = None,
    recorder: LatencyRecorder | None = None,
    on_start: Callable[[], object] | None = None,
    grace_s: float = 1.0,
) -> Measurement:
    """Send calls at Poisson times of ``rate`` per second against an open ``target``.

    Args:
        rate: mean calls per second (each of ``request_batch`` items).
        max_outstanding: calls in flight beyond which an arrival is dropped, not sent.
        late_tolerance_s: how far behind schedule a send may be before it counts as late;
            the default 2 ms is above the timer jitter of an idle event loop.
        rng: the source of inter-arrival times; seeded ``random.Random(0)`` by default,
            so two runs send on the same schedule.
        sleep: waits for the next arrival; injected with ``clock`` for tests.
        Others: as :func:`closed_loop`.
    """
    if max_outstanding < 1:
        raise ValueError(f"max_outstanding must be >= 1 calls, got {max_outstanding!r}")
    feed = Feed(inputs, request_batch)
    run = _Run(target, clock, stop, recorder, on_start)
    start = clock()
    window = Window(start, warmup, seconds, requests)
    schedule = PoissonSchedule(rate, rng if rng is not None else random.Random(0), start)
    in_flight: set[asyncio.Future[Any]] = set()
    bugs: list[BaseException] = []

    def finished(task: asyncio.Future[Any]) -> None:
        in_flight.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            bugs.append(exc)

    async def send(items: list[Any], scheduled: float, phase: Phase) -> None:
        if phase is Phase.MEASURE:
            run.recorder.sent(clock() - scheduled, late_tolerance_s)
        await run.call(items, scheduled, phase)

    try:
        while not run.stop.is_set():
            scheduled = schedule.next()
            phase = window.admit(scheduled)
            if phase is Phase.STOP:
                break
            await _sleep_until(scheduled, clock, sleep, run.stop)
            if run.stop.is_set():
                break
            if phase is Phase.MEASURE:
                run.measuring()
            if len(in_flight) >= max_outstanding:
                if phase is Phase.MEASURE:
                    run.recorder.dropped_sends += 1
                continue
            task = asyncio.ensure_future(send(feed.take(), scheduled, phase))
            in_flight.add(task)
            task.add_done_callback(finished)
    except BaseException:
        await _cancel(set(in_flight))
        raise
    await _join(set(in_flight), run.stop, grace_s)
    if bugs:  # a bug in the generator or the target, not an outcome
        raise bugs[0]
    return run.measurement(window)


async def _sleep_until(t: float, clock: Clock, sleep: Sleep, stop: asyncio.Event) -> None:
    """Wait until ``clock() >= t``, waking at least every 100 ms to notice ``stop``.

    It always yields once, so that calls already due start even when the schedule is
    behind. uvloop's timers round to whole ms and may fire early, hence the loop.
    """
    await sleep(0)
    while not stop.is_set() and (delay := t - clock()) > 0:
        await sleep(min(delay, 0.1))


async def _join(tasks: set[asyncio.Future[Any]], stop: asyncio.Event, grace_s: float) -> None:
    """Wait for ``tasks``; once ``stop`` is set, give them ``grace_s``, then cancel them.

    Cancelling this coroutine (a second Ctrl-C) cancels them at once.
    """
    if not tasks:
        return
    everything: asyncio.Future[Any] = asyncio.gather(*tasks, return_exceptions=True)
    stopping: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({everything, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not everything.done():
            await asyncio.wait({everything}, timeout=grace_s)
    finally:
        stopping.cancel()
        results = await _cancel(tasks)
    for result in results:  # a bug in a client, not an outcome of the target
        if isinstance(result, Exception):
            raise result


async def _cancel(tasks: set[asyncio.Future[Any]]) -> list[BaseException | None]:
    """Cancel the unfinished ``tasks``; wait for all of them; return their outcomes."""
    for task in tasks:
        task.cancel()
    results: list[BaseException | None] = await asyncio.gather(*tasks, return_exceptions=True)
    return results
