"""The sleeping stages of benchmarks/pipeline_efficiency.py."""

from __future__ import annotations

import pytest
from benchmarks.pipeline_efficiency import Stage


def test_a_stage_sleeps_its_fixed_time_plus_its_time_per_item() -> None:
    stage = Stage("decode", "2,0.5,60", max_batch=64)
    assert (stage.instances, stage.fixed_s, stage.per_item_s) == (2, 0.0005, 0.00006)
    # two instances, each 64 items per 0.5 ms + 64 x 60 µs
    assert stage.sleep_ceiling() == pytest.approx(2 * 64 / 0.00434)


@pytest.mark.parametrize("spec", ["2,0.5", "two,0.5,60", "0,0.5,60", "2,-1,60"])
def test_a_bad_stage_spec_names_the_option(spec: str) -> None:
    with pytest.raises(SystemExit, match="--decode"):
        Stage("decode", spec, max_batch=64)
