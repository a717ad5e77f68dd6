"""The result of a benchmark run: plain msgspec structs, so JSON round-trips exactly."""

from __future__ import annotations

from typing import Any

import msgspec

from torchweir.bench.stats import Bucket, PointStats

__all__ = ["BenchResult", "Point", "load_label"]


def load_label(clients: int | None, rate_per_s: float | None) -> str:
    """``"1 client"``, ``"10 clients"`` or ``"200/s"``."""
    if rate_per_s is not None:
        return f"{rate_per_s:g}/s"
    return f"{clients} client{'' if clients == 1 else 's'}"


class Point(msgspec.Struct, frozen=True):
    """One target at one load: ``clients`` (closed loop) or ``rate_per_s`` (open loop).

    ``histogram`` holds the latencies of the successful calls in 5 % wide log buckets,
    enough to redraw the CDF from a JSON file. ``interrupted`` marks a point cut short by
    Ctrl-C: its numbers cover less time than asked for.
    """

    target: str
    clients: int | None
    rate_per_s: float | None
    request_batch: int
    stats: PointStats
    histogram: tuple[Bucket, ...]
    interrupted: bool = False

    @property
    def load(self) -> str:
        """The load as a label: ``"10 clients"`` or ``"200/s"``."""
        return load_label(self.clients, self.rate_per_s)


class BenchResult(msgspec.Struct, frozen=True):
    """Every point measured, with where and how it was measured.

    ``interrupted`` is true when Ctrl-C stopped the run: ``points`` then holds what had
    been measured by then, the cut-short point included.
    """

    machine: dict[str, Any]
    args: dict[str, Any]
    points: tuple[Point, ...]
    interrupted: bool = False
    command: str | None = None

    @property
    def targets(self) -> list[str]:
        """The target names, in the order they ran."""
        return list(dict.fromkeys(p.target for p in self.points))
