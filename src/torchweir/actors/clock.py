"""Injected clocks: the only source of time for batching and deadlines.

Scheduling never reads ``time.time()``. Actors and the runtime ask a :class:`Clock` for
``now()`` and for timers, so tests swap in :class:`FakeClock` and advance time by hand
instead of sleeping (trio's ``MockClock`` does the same).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from typing import Protocol


class Timer(Protocol):
    """A scheduled callback that can be cancelled."""

    def cancel(self) -> None: ...


class Clock(Protocol):
    """Monotonic seconds plus timers that fire on the event loop's thread."""

    def now(self) -> float: ...

    def call_at(self, when: float, callback: Callable[[], object]) -> Timer: ...


class LoopClock:
    """The real clock: ``time.monotonic()`` and the running loop's timers.

    ``now()`` reads ``time.monotonic()`` rather than ``loop.time()`` because uvloop's
    loop time is cached per iteration at millisecond resolution, too coarse for
    latency accounting.
    """

    def now(self) -> float:
        return time.monotonic()

    def call_at(self, when: float, callback: Callable[[], object]) -> Timer:
        delay = when - time.monotonic()
        return asyncio.get_running_loop().call_later(max(delay, 0.0), callback)


class _FakeTimer:
    __slots__ = ("callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callable[[], object]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeClock:
    """A clock that moves only when a test calls :meth:`advance`.

    Due timers run synchronously inside ``advance`` in deadline order, so a test reads
    the same sequence of events on every run.
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._timers: list[tuple[float, int, _FakeTimer]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self._now

    def call_at(self, when: float, callback: Callable[[], object]) -> Timer:
        timer = _FakeTimer(when, callback)
        heapq.heappush(self._timers, (when, next(self._seq), timer))
        return timer

    def advance(self, seconds: float) -> None:
        """Move time forward and run every timer that has come due, in order."""
        if seconds < 0:
            raise ValueError(f"cannot move a clock backwards (advance({seconds!r}))")
        target = self._now + seconds
        while self._timers and self._timers[0][0] <= target:
            when, _, timer = heapq.heappop(self._timers)
            self._now = max(self._now, when)
            if not timer.cancelled:
                timer.callback()
        self._now = target

    @property
    def pending_timers(self) -> int:
        """How many timers are scheduled and not cancelled."""
        return sum(1 for _, _, timer in self._timers if not timer.cancelled)
