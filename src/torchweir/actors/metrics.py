"""Fixed-bucket histograms for per-node timings (queue wait, kernel run time).

Observing costs one ``bisect`` and two additions, cheap enough for every request of every
node. Buckets are Prometheus-style upper bounds in seconds; a snapshot is a frozen struct
the HTTP server renders as ``_bucket``/``_sum``/``_count`` lines.
"""

from __future__ import annotations

import bisect

import msgspec

__all__ = ["LATENCY_BUCKETS", "Histogram", "HistogramSnapshot"]

#: Upper bounds in seconds, from 50 us to 10 s (``+Inf`` is implicit).
LATENCY_BUCKETS = (
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


class HistogramSnapshot(msgspec.Struct, frozen=True):
    """``counts[i]`` observations fell in ``(buckets[i-1], buckets[i]]``; the last count
    is above every bound. ``sum`` is in the observations' unit (seconds)."""

    buckets: tuple[float, ...]
    counts: tuple[int, ...]
    sum: float
    count: int

    def merged(self, other: HistogramSnapshot) -> HistogramSnapshot:
        if other.buckets != self.buckets:
            raise ValueError("cannot merge histograms with different buckets")
        return HistogramSnapshot(
            self.buckets,
            tuple(a + b for a, b in zip(self.counts, other.counts, strict=True)),
            self.sum + other.sum,
            self.count + other.count,
        )


class Histogram:
    """Counts per bucket, with a running sum. Not locked: one writer per histogram."""

    __slots__ = ("_buckets", "_counts", "_sum")

    def __init__(self, buckets: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        if list(buckets) != sorted(buckets) or not buckets:
            raise ValueError(f"buckets must be a non-empty ascending tuple, got {buckets!r}")
        self._buckets = buckets
        self._counts = [0] * (len(buckets) + 1)
        self._sum = 0.0

    def observe(self, value: float) -> None:
        self._counts[bisect.bisect_left(self._buckets, value)] += 1
        self._sum += value

    def snapshot(self) -> HistogramSnapshot:
        counts = tuple(self._counts)
        return HistogramSnapshot(self._buckets, counts, self._sum, sum(counts))
