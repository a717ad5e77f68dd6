"""``torchweir.bench.run``: measure targets over a sweep of loads, in this process.

Each target runs all its points on a fresh event loop (``tw.run``, uvloop when installed),
one target at a time, so a baseline and torchweir are compared in one run on one machine.
A target is opened once for all its points: loading a model is not a latency.

Ctrl-C stops the current point (its calls in flight get a second to finish), skips the
rest, and the result comes back marked ``interrupted`` with everything measured so far. A
second Ctrl-C aborts the usual way, with ``KeyboardInterrupt``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
import signal
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from torchweir.bench.load import Feed, Measurement, Window, closed_loop, open_loop
from torchweir.bench.progress import Progress, open_progress
from torchweir.bench.result import BenchResult, Point, load_label
from torchweir.bench.stats import LatencyRecorder
from torchweir.bench.system import Monitor, Usage, machine_info
from torchweir.bench.targets import Target
from torchweir.runtime.loop import run as run_loop

__all__ = ["run"]


@dataclasses.dataclass(frozen=True)
class _Settings:
    inputs: Sequence[Any]
    seconds: float | None
    requests: int | None
    request_batch: int
    warmup: float
    max_outstanding: int
    late_tolerance_s: float
    seed: int


def run(
    targets: Target | Sequence[Target],
    inputs: Sequence[Any],
    *,
    clients: Sequence[int] = (1, 10, 64),
    seconds: float | None = 10.0,
    requests: int | None = None,
    request_batch: int = 1,
    rate: float | Sequence[float] | None = None,
    warmup: float = 2.0,
    progress: bool = True,
    max_outstanding: int = 10_000,
    late_tolerance_s: float = 0.002,
    seed: int = 0,
    command: str | None = None,
) -> BenchResult:
    """Benchmark each target at each load and return every point's statistics.

    Args:
        targets: what to measure, in this order (names must differ).
        inputs: the items to send, cycled in order.
        clients: the closed-loop sweep: concurrent clients per point.
        seconds: the measured window per point, after ``warmup`` seconds.
        requests: measure this many calls per point instead (overrides ``seconds``).
        request_batch: items per call (``submit_many`` for a runtime target).
        rate: open loop instead: Poisson calls per second, one point per rate.
        progress: show a live bar (stderr), or lines when stderr is not a terminal.
        max_outstanding, late_tolerance_s: open-loop limits, see ``load.open_loop``.
        seed: seeds the open loop's arrival times, so runs repeat the same schedule.
        command: the command line, recorded in the result.

    Raises:
        ValueError: a setting is out of range, or no inputs were given.
    """
    targets = list(targets) if isinstance(targets, Sequence) else [targets]
    names = [t.name for t in targets]
    if not targets or len(set(names)) != len(names):
        raise ValueError(f"give one or more targets with distinct names, got {names}")
    if not inputs:
        raise ValueError("give at least one input to send")
    if requests is not None:
        seconds = None
    loads = _loads(clients, rate)
    Window(0.0, warmup, seconds, requests)  # the checks fail here, before any model loads
    Feed(inputs, request_batch)
    if max_outstanding < 1:
        raise ValueError(f"max_outstanding must be >= 1 calls, got {max_outstanding!r}")
    settings = _Settings(
        inputs, seconds, requests, request_batch, warmup, max_outstanding, late_tolerance_s, seed
    )
    args = {
        "targets": names,
        "inputs": len(inputs),
        "clients": [c for c, _ in loads if c is not None] or None,
        "rate_per_s": [r for _, r in loads if r is not None] or None,
        "seconds": seconds,
        "requests": requests,
        "request_batch": request_batch,
        "warmup_s": warmup,
        "max_outstanding": max_outstanding,
        "late_tolerance_s": late_tolerance_s,
        "seed": seed,
    }
    points: list[Point] = []
    interrupted = False
    display = open_progress(progress)
    try:
        for target in targets:
            try:
                interrupted = run_loop(_bench(target, loads, settings, points, display))
            except KeyboardInterrupt:
                interrupted = True
            if interrupted:
                break
    finally:
        display.close()
    return BenchResult(machine_info(), args, tuple(points), interrupted, command)


def _loads(
    clients: Sequence[int], rate: float | Sequence[float] | None
) -> list[tuple[int | None, float | None]]:
    if rate is not None:
        rates = [rate] if isinstance(rate, (int, float)) else list(rate)
        if not rates or not all(r > 0 for r in rates):
            raise ValueError(f"rate must be one or more positive calls/s, got {rate!r}")
        return [(None, float(r)) for r in rates]
    if not clients or not all(isinstance(c, int) and c >= 1 for c in clients):
        raise ValueError(f"clients must be one or more integers >= 1, got {clients!r}")
    return [(c, None) for c in clients]


async def _bench(
    target: Target,
    loads: list[tuple[int | None, float | None]],
    settings: _Settings,
    sink: list[Point],
    display: Progress,
) -> bool:
    """Run every load against ``target``; append points to ``sink``; True if interrupted."""
    stop = asyncio.Event()
    with _sigint_sets(stop):
        await target.open()
        try:
            for clients, rate in loads:
                if stop.is_set():
                    break
                point = await _point(target, clients, rate, settings, stop, display)
                if point is not None:
                    sink.append(point)
        finally:
            await target.close()
    return stop.is_set()


async def _point(
    target: Target,
    clients: int | None,
    rate: float | None,
    s: _Settings,
    stop: asyncio.Event,
    display: Progress,
) -> Point | None:
    """One point; ``None`` if it was interrupted before anything was measured."""
    recorder = LatencyRecorder()
    label = f"{target.name} {load_label(clients, rate)}"
    total, unit = (s.seconds, "s") if s.seconds is not None else (s.requests, "calls")
    display.start(label, float(total or 0), unit, s.warmup)
    ticker = asyncio.ensure_future(_tick(display, recorder))
    with Monitor() as monitor:

        def measuring() -> None:
            monitor.start()
            display.measuring()

        common: dict[str, Any] = {
            "seconds": s.seconds,
            "requests": s.requests,
            "request_batch": s.request_batch,
            "warmup": s.warmup,
            "stop": stop,
            "recorder": recorder,
            "on_start": measuring,
        }
        try:
            measured: Measurement
            if rate is None:
                assert clients is not None
                measured = await closed_loop(target, s.inputs, clients=clients, **common)
            else:
                measured = await open_loop(
                    target,
                    s.inputs,
                    rate=rate,
                    max_outstanding=s.max_outstanding,
                    late_tolerance_s=s.late_tolerance_s,
                    rng=random.Random(s.seed),
                    **common,
                )
        finally:
            ticker.cancel()
            usage = monitor.stop() if monitor.running else Usage()
    if recorder.calls == 0 and measured.interrupted:
        return None
    point = Point(
        target=target.name,
        clients=clients,
        rate_per_s=rate,
        request_batch=s.request_batch,
        stats=recorder.summary(measured.duration_s, usage),
        histogram=recorder.histogram(),
        interrupted=measured.interrupted,
    )
    display.done(point)
    return point


async def _tick(display: Progress, recorder: LatencyRecorder) -> None:
    while True:
        await asyncio.sleep(0.25)
        display.update(recorder)


@contextlib.contextmanager
def _sigint_sets(stop: asyncio.Event) -> Iterator[None]:
    """While inside, the first Ctrl-C sets ``stop``; the next one acts as it did before.

    Only the main thread receives signals; elsewhere (or on Windows) nothing changes.
    """
    loop = asyncio.get_running_loop()
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    installed = False

    def restore() -> None:
        nonlocal installed
        if installed:
            installed = False
            loop.remove_signal_handler(signal.SIGINT)
            if previous is not None:
                signal.signal(signal.SIGINT, previous)

    def first() -> None:
        stop.set()
        restore()

    try:
        loop.add_signal_handler(signal.SIGINT, first)
        installed = True
    except (NotImplementedError, RuntimeError, ValueError):
        pass
    try:
        yield
    finally:
        restore()
