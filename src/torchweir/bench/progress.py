"""Live progress of a benchmark: a rich bar on a terminal, plain lines elsewhere.

The bar is refreshed by the benchmark's own ticker task (4 times a second), not by rich's
refresh thread, so the display adds no thread competing for the GIL with the target.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Protocol, TextIO

from torchweir.bench.result import Point
from torchweir.bench.stats import LatencyRecorder

__all__ = ["LineProgress", "NoProgress", "Progress", "RichProgress", "open_progress"]


class Progress(Protocol):
    def start(self, label: str, total: float, unit: str, warmup_s: float) -> None:
        """A point begins; ``total`` is in ``unit`` ("s" or "calls")."""

    def measuring(self) -> None:
        """The warm-up is over; the measured window has opened."""

    def update(self, recorder: LatencyRecorder) -> None:
        """Show the live counts of the current point."""

    def done(self, point: Point) -> None:
        """The point ended with these statistics."""

    def close(self) -> None: ...


class NoProgress:
    def start(self, label: str, total: float, unit: str, warmup_s: float) -> None:
        pass

    def measuring(self) -> None:
        pass

    def update(self, recorder: LatencyRecorder) -> None:
        pass

    def done(self, point: Point) -> None:
        pass

    def close(self) -> None:
        pass


class LineProgress:
    """One line when a point starts and one when it ends, for logs and pipes."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._label = ""

    def _print(self, text: str) -> None:
        self._stream.write(f"bench: {self._label}: {text}\n")
        self._stream.flush()

    def start(self, label: str, total: float, unit: str, warmup_s: float) -> None:
        self._label = label
        self._print(f"warm-up {warmup_s:g} s, then {total:g} {unit}")

    def measuring(self) -> None:
        self._print("measuring")

    def update(self, recorder: LatencyRecorder) -> None:
        pass

    def done(self, point: Point) -> None:
        s = point.stats
        p99 = f"{s.p99_ms:.2f} ms" if s.p99_ms is not None else "-"
        cut = " (interrupted)" if point.interrupted else ""
        self._print(f"{s.qps:,.0f} items/s, TP99 {p99}, {s.errors} errors{cut}")

    def close(self) -> None:
        pass


class RichProgress:
    """A bar per point with elapsed time, live QPS and errors, on stderr."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self._bar = Progress(
            TextColumn("{task.description:<28}"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TimeElapsedColumn(),
            TextColumn("{task.fields[qps]:>12} items/s  errors {task.fields[errors]}"),
            console=Console(stderr=True),
            auto_refresh=False,
        )
        self._bar.start()
        self._task: Any = None
        self._label = ""
        self._unit = "s"
        self._since: float | None = None
        self._seen = (0.0, 0)

    def start(self, label: str, total: float, unit: str, warmup_s: float) -> None:
        self._unit, self._since, self._seen = unit, None, (time.perf_counter(), 0)
        self._task = self._bar.add_task(f"{label} (warm-up)", total=total, qps="-", errors=0)
        self._label = label
        self._bar.refresh()

    def measuring(self) -> None:
        self._since = time.perf_counter()
        self._bar.update(self._task, description=self._label)

    def update(self, recorder: LatencyRecorder) -> None:
        if self._since is None:
            return
        now = time.perf_counter()
        then, items = self._seen
        rate = (recorder.items - items) / (now - then) if now > then else 0.0
        self._seen = (now, recorder.items)
        done = now - self._since if self._unit == "s" else recorder.calls
        self._bar.update(
            self._task, completed=done, qps=f"{rate:,.0f}", errors=recorder.error_count
        )
        self._bar.refresh()

    def done(self, point: Point) -> None:
        s = point.stats
        label = f"{self._label} (interrupted)" if point.interrupted else self._label
        self._bar.update(
            self._task,
            description=label,
            completed=self._bar.tasks[-1].total if not point.interrupted else None,
            qps=f"{s.qps:,.0f}",
            errors=s.errors,
        )
        self._bar.refresh()

    def close(self) -> None:
        self._bar.stop()


def open_progress(enabled: bool, stream: TextIO | None = None) -> Progress:
    """A rich bar when ``stream`` (stderr) is a terminal and rich is installed, else lines."""
    if not enabled:
        return NoProgress()
    stream = stream if stream is not None else sys.stderr
    if stream is sys.stderr and stream.isatty():
        try:
            return RichProgress()
        except ImportError:
            pass
    return LineProgress(stream)
