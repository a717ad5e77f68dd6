"""Latency recording and the summary of one benchmark point.

The recorder keeps every latency, raw, so that percentiles are exact (``numpy.percentile``
with its default linear method, nothing approximated). A log-bucketed histogram is derived
from the raw values only when a point ends, for the JSON report and the CDF plot: buckets
grow by 5 % from 1 µs to 100 s, so a bucket is never wider than 5 % of its latency.

Accounting, per call of K items:

* each failed item counts once in ``errors_by_type``, never as a latency;
* the successful items of a call count in ``items`` (the QPS numerator);
* a call whose K items all succeeded counts in ``requests`` with its latency; a call with
  any failed item has no latency, because its completion time says nothing about success.
"""

from __future__ import annotations

import array
import math
from collections import Counter

import msgspec
import numpy as np
import numpy.typing as npt

from torchweir.bench.system import GpuUsage, Usage

__all__ = [
    "HISTOGRAM_BASE_S",
    "HISTOGRAM_GROWTH",
    "Bucket",
    "LatencyRecorder",
    "PointStats",
    "error_name",
    "histogram",
]

HISTOGRAM_BASE_S = 1e-6
HISTOGRAM_GROWTH = 1.05
_HISTOGRAM_TOP_S = 100.0
_BUCKETS = math.ceil(math.log(_HISTOGRAM_TOP_S / HISTOGRAM_BASE_S) / math.log(HISTOGRAM_GROWTH))


class Bucket(msgspec.Struct, frozen=True):
    """``count`` latencies in ``[lower_s, upper_s)``; the first and last bucket also hold
    what falls below 1 µs or above 100 s."""

    lower_s: float
    upper_s: float
    count: int


class PointStats(msgspec.Struct, frozen=True):
    """What one point measured. Times in ms, rates per second, memory in MiB.

    ``qps`` counts successful items per second of ``duration_s``, the time from the start
    of measuring to the last completion. Percentile fields are ``None`` when no call
    succeeded. ``late``, ``dropped_sends`` and ``send_lag_p99_ms`` only apply to an open
    loop (see :func:`torchweir.bench.load.open_loop`). GPU fields are ``None`` without
    nvidia-ml-py or a GPU.
    """

    requests: int
    items: int
    errors: int
    errors_by_type: dict[str, int]
    qps: float
    mean_ms: float | None
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    late: int
    dropped_sends: int
    send_lag_p99_ms: float | None
    duration_s: float
    cpu_percent: float | None
    gpu_util_percent: float | None = None
    gpu_util_max_percent: float | None = None
    gpu_mem_mib: float | None = None
    gpus: tuple[GpuUsage, ...] = ()


def error_name(exc: BaseException) -> str:
    """The error's type, with its cause's type when torchweir wrapped one.

    ``KernelError(ValueError)`` says more than ``KernelError`` about what went wrong.
    """
    name = type(exc).__name__
    cause = exc.__cause__
    if cause is not None and cause is not exc:
        return f"{name}({type(cause).__name__})"
    return name


class LatencyRecorder:
    """Counts outcomes and keeps every latency of one point.

    ``array.array`` keeps the raw floats compact (8 bytes each) and appends in tens of
    nanoseconds, so recording costs the load generator almost nothing.
    """

    def __init__(self) -> None:
        self._latencies = array.array("d")
        self._lags = array.array("d")
        self.calls = 0
        self.items = 0
        self.errors: Counter[str] = Counter()
        self.late = 0
        self.dropped_sends = 0

    @property
    def requests(self) -> int:
        """Calls that succeeded entirely, each with a recorded latency."""
        return len(self._latencies)

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def latencies_s(self) -> npt.NDArray[np.float64]:
        """The recorded latencies, in seconds, in completion order (a copy)."""
        return np.array(self._latencies, dtype=np.float64)

    def record(self, latency_s: float, outcomes: list[object]) -> None:
        """Account one finished call: its latency if every item succeeded, else its errors."""
        self.calls += 1
        failed = [o for o in outcomes if isinstance(o, BaseException)]
        self.items += len(outcomes) - len(failed)
        if not failed:
            self._latencies.append(latency_s)
            return
        for exc in failed:
            self.errors[error_name(exc)] += 1

    def fail(self, exc: BaseException, items: int) -> None:
        """Account a call that raised instead of returning per-item outcomes."""
        self.calls += 1
        self.errors[error_name(exc)] += items

    def sent(self, lag_s: float, tolerance_s: float) -> None:
        """Account an open-loop send ``lag_s`` after its scheduled time."""
        self._lags.append(lag_s)
        if lag_s > tolerance_s:
            self.late += 1

    def summary(self, duration_s: float, usage: Usage | None = None) -> PointStats:
        """The point's statistics; percentiles are ``numpy.percentile``'s, exactly."""
        lat = self.latencies_s
        ms: list[float | None] = [None] * 5
        if lat.size:
            p50, p90, p99 = np.percentile(lat, [50, 90, 99])
            ms = [1e3 * float(v) for v in (lat.mean(), p50, p90, p99, lat.max())]
        lag_p99 = 1e3 * float(np.percentile(self._lags, 99)) if len(self._lags) else None
        usage = usage if usage is not None else Usage()
        return PointStats(
            requests=self.requests,
            items=self.items,
            errors=self.error_count,
            errors_by_type=dict(sorted(self.errors.items())),
            qps=self.items / duration_s if duration_s > 0 else 0.0,
            mean_ms=ms[0],
            p50_ms=ms[1],
            p90_ms=ms[2],
            p99_ms=ms[3],
            max_ms=ms[4],
            late=self.late,
            dropped_sends=self.dropped_sends,
            send_lag_p99_ms=lag_p99,
            duration_s=duration_s,
            cpu_percent=usage.cpu_percent,
            gpu_util_percent=usage.gpu_util_percent,
            gpu_util_max_percent=usage.gpu_util_max_percent,
            gpu_mem_mib=usage.gpu_mem_mib,
            gpus=usage.gpus,
        )

    def histogram(self) -> tuple[Bucket, ...]:
        return histogram(self.latencies_s)


def histogram(latencies_s: npt.NDArray[np.float64]) -> tuple[Bucket, ...]:
    """The non-empty log buckets of ``latencies_s``, in increasing order."""
    if not latencies_s.size:
        return ()
    scaled = np.maximum(latencies_s, HISTOGRAM_BASE_S) / HISTOGRAM_BASE_S
    index = np.floor(np.log(scaled) / math.log(HISTOGRAM_GROWTH)).astype(np.int64)
    counts = np.bincount(np.clip(index, 0, _BUCKETS - 1), minlength=_BUCKETS)
    return tuple(
        Bucket(
            HISTOGRAM_BASE_S * HISTOGRAM_GROWTH ** int(k),
            HISTOGRAM_BASE_S * HISTOGRAM_GROWTH ** (int(k) + 1),
            int(counts[k]),
        )
        for k in np.flatnonzero(counts)
    )
