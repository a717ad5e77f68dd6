from __future__ import annotations

import pytest

from torchweir.actors.metrics import LATENCY_BUCKETS, Histogram


def test_observations_land_in_the_first_bucket_at_or_above_them() -> None:
    h = Histogram((0.001, 0.01, 0.1))
    for value in (0.0005, 0.001, 0.002, 0.05, 0.5):
        h.observe(value)
    snap = h.snapshot()
    assert snap.counts == (2, 1, 1, 1)
    assert snap.count == 5
    assert snap.sum == pytest.approx(0.5535)
    assert snap.merged(snap).counts == (4, 2, 2, 2)


def test_bad_buckets_are_rejected() -> None:
    with pytest.raises(ValueError, match="ascending"):
        Histogram((0.1, 0.01))
    with pytest.raises(ValueError, match="different buckets"):
        Histogram().snapshot().merged(Histogram((1.0,)).snapshot())
    assert len(Histogram().snapshot().counts) == len(LATENCY_BUCKETS) + 1
