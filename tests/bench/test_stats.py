from __future__ import annotations

import numpy as np
import pytest

import torchweir as tw
from torchweir.bench.stats import HISTOGRAM_GROWTH, LatencyRecorder, error_name, histogram
from torchweir.bench.system import Usage


def recorded(latencies_s: np.ndarray) -> LatencyRecorder:
    recorder = LatencyRecorder()
    for x in latencies_s:
        recorder.record(float(x), ["ok"])
    return recorder


def test_percentiles_are_numpys_on_the_recorded_latencies() -> None:
    latencies = np.random.default_rng(7).lognormal(mean=-6, sigma=1.2, size=10_001)
    recorder = recorded(latencies)
    stats = recorder.summary(duration_s=2.0)
    np.testing.assert_array_equal(recorder.latencies_s, latencies)
    p50, p90, p99 = np.percentile(latencies, [50, 90, 99])
    assert stats.p50_ms == 1e3 * p50
    assert stats.p90_ms == 1e3 * p90
    assert stats.p99_ms == 1e3 * p99
    assert stats.mean_ms == 1e3 * latencies.mean()
    assert stats.max_ms == 1e3 * latencies.max()
    assert (stats.requests, stats.items, stats.qps) == (10_001, 10_001, 10_001 / 2.0)


def test_failed_items_count_by_type_and_never_as_latencies() -> None:
    recorder = LatencyRecorder()
    recorder.record(0.001, [1, 2])
    recorder.record(0.500, [1, ValueError("x")])  # partly failed: no latency
    recorder.record(0.900, [KeyError("k"), ValueError("y")])
    recorder.fail(TimeoutError("whole call"), items=3)
    stats = recorder.summary(duration_s=1.0, usage=Usage(cpu_percent=50.0))
    assert recorder.latencies_s.tolist() == [0.001]
    assert stats.max_ms == 1.0
    assert (stats.requests, stats.items, stats.errors) == (1, 3, 6)
    assert stats.errors_by_type == {"KeyError": 1, "TimeoutError": 3, "ValueError": 2}
    assert recorder.calls == 4
    assert stats.qps == 3.0  # successful items only
    assert stats.cpu_percent == 50.0


def test_a_wrapped_error_is_named_with_its_cause() -> None:
    with pytest.raises(tw.KernelError) as caught:
        raise tw.KernelError("bad", node="n") from ValueError("inner")
    assert error_name(caught.value) == "KernelError(ValueError)"
    assert error_name(tw.Overloaded("n", 4)) == "Overloaded"


def test_no_success_gives_no_percentiles_and_zero_qps() -> None:
    recorder = LatencyRecorder()
    recorder.fail(RuntimeError(), items=1)
    stats = recorder.summary(duration_s=0.0)
    assert (stats.p50_ms, stats.p99_ms, stats.mean_ms, stats.max_ms) == (None,) * 4
    assert stats.qps == 0.0
    assert stats.send_lag_p99_ms is None
    assert recorder.histogram() == ()


def test_sends_later_than_the_tolerance_count_as_late() -> None:
    recorder = LatencyRecorder()
    for lag in (0.0, 0.0005, 0.002, 0.0021, 0.5):
        recorder.sent(lag, tolerance_s=0.002)
    stats = recorder.summary(duration_s=1.0)
    assert stats.late == 2
    assert stats.send_lag_p99_ms == pytest.approx(
        1e3 * np.percentile([0, 5e-4, 2e-3, 2.1e-3, 0.5], 99)
    )


def test_histogram_buckets_hold_every_latency_within_five_percent() -> None:
    latencies = np.concatenate([np.random.default_rng(1).lognormal(-7, 2, 5000), [1e-9, 250.0]])
    buckets = histogram(latencies)
    assert sum(b.count for b in buckets) == latencies.size
    assert all(b.upper_s / b.lower_s == pytest.approx(HISTOGRAM_GROWTH) for b in buckets)
    assert [b.lower_s for b in buckets] == sorted(b.lower_s for b in buckets)
    assert buckets[0].lower_s == pytest.approx(1e-6)  # below 1 µs: first bucket
    assert buckets[-1].upper_s >= 100.0  # above 100 s: last bucket
    inside = latencies[(latencies >= 1e-6) & (latencies < 100)]
    for x in inside[:500]:
        (bucket,) = [b for b in buckets if b.lower_s * (1 - 1e-12) <= x < b.upper_s * (1 + 1e-12)]
        assert bucket.count >= 1
