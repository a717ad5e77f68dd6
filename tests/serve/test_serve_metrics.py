"""The Prometheus exposition parses with prometheus_client and says what the snapshot says."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from torchweir.actors.actor import NodeStatistics
from torchweir.actors.metrics import Histogram
from torchweir.runtime.runtime import RuntimeStatistics
from torchweir.serve.metrics import HttpStatistics, batch_size_bounds, render


def node(name: str, **fields: Any) -> NodeStatistics:
    empty = Histogram().snapshot()
    base: dict[str, Any] = {
        "node": name, "queued": 0, "running": 0, "arrived": 0, "dispatched": 0, "dropped": 0,
        "batches": 0, "batch_sizes": (0,) * 9, "instances": 1, "busy_instances": 0,
        "queue_wait_s": empty, "run_time_s": empty, "busy_seconds": 0.0, "errors": {},
    }  # fmt: skip
    return NodeStatistics(**{**base, **fields})


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_snapshot_renders_to_parseable_families() -> None:
    wait = Histogram()
    for seconds in (0.0001, 0.003, 0.003, 20.0):
        wait.observe(seconds)
    odd = 'we"ird\\name\n'
    decode = node(
        "decode",
        arrived=10,
        dispatched=9,
        dropped=1,
        queued=2,
        busy_seconds=1.25,
        batch_sizes=(0, 2, 0, 1, 0, 0, 0, 0, 1),
        queue_wait_s=wait.snapshot(),
        errors={"InputError": 2, "DeadlineExceeded": 1},
    )
    stats = RuntimeStatistics(state="running", pending=3, nodes=(decode, node(odd, arrived=4)))
    http = HttpStatistics({200: 7, 400: 2}, 1, Histogram().snapshot())
    got = samples(render(stats, http))
    d = (("node", "decode"),)
    assert got[("torchweir_node_requests_total", d)] == 10
    assert got[("torchweir_node_requests_total", (("node", odd),))] == 4
    assert got[("torchweir_node_dispatched_total", d)] == 9
    assert got[("torchweir_node_dropped_total", d)] == 1
    assert got[("torchweir_node_queue_depth", d)] == 2
    assert got[("torchweir_node_busy_seconds_total", d)] == 1.25
    assert got[("torchweir_node_errors_total", (("node", "decode"), ("type", "InputError")))] == 2
    # batch sizes 1, 1, 3, 8 -> cumulative at le=1,2,4,8 and +Inf
    buckets = {
        le: got[("torchweir_node_batch_size_bucket", (("le", le), ("node", "decode")))]
        for le in ("1", "2", "4", "8", "+Inf")
    }
    assert buckets == {"1": 2, "2": 2, "4": 3, "8": 4, "+Inf": 4}
    assert got[("torchweir_node_batch_size_sum", d)] == 1 + 1 + 3 + 8
    assert got[("torchweir_node_batch_size_count", d)] == 4
    assert got[("torchweir_node_queue_wait_seconds_bucket", (("le", "0.005"), *d))] == 3
    assert got[("torchweir_node_queue_wait_seconds_bucket", (("le", "10"), *d))] == 3
    assert got[("torchweir_node_queue_wait_seconds_bucket", (("le", "+Inf"), *d))] == 4
    assert got[("torchweir_node_queue_wait_seconds_count", d)] == 4
    assert got[("torchweir_node_queue_wait_seconds_sum", d)] == pytest.approx(20.0061)
    assert got[("torchweir_runtime_pending", ())] == 3
    assert got[("torchweir_runtime_state", (("state", "running"),))] == 1
    assert got[("torchweir_runtime_state", (("state", "closed"),))] == 0
    assert got[("torchweir_http_requests_total", (("code", "400"),))] == 2
    assert got[("torchweir_http_requests_in_flight", ())] == 1


def test_every_family_has_help_and_type_lines() -> None:
    text = render(RuntimeStatistics(state="unstarted", pending=0, nodes=(node("a"),)))
    helps = [line.split()[2] for line in text.splitlines() if line.startswith("# HELP")]
    types = [line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")]
    assert helps == types
    assert len(set(helps)) == len(helps)
    assert "torchweir_http_requests_total" not in helps  # no HTTP section without stats


@pytest.mark.parametrize(
    ("max_batch", "bounds"),
    [(1, (1,)), (2, (1, 2)), (8, (1, 2, 4, 8)), (12, (1, 2, 4, 8, 12)), (0, (1,))],
)
def test_batch_size_bounds(max_batch: int, bounds: tuple[int, ...]) -> None:
    assert batch_size_bounds(max_batch) == bounds
