"""``GET /metrics``: the runtime's statistics in the Prometheus text format (version 0.0.4).

Written by hand from :meth:`Runtime.statistics` snapshots, so serving needs no metrics
library and a scrape costs nothing between scrapes: the runtime keeps plain counters and
histograms anyway. Every node metric carries a ``node`` label.

===========================================  =========  ==================================
metric                                       type       from ``NodeStatistics``
===========================================  =========  ==================================
``torchweir_node_requests_total``            counter    ``arrived`` in the mailbox
``torchweir_node_dispatched_total``          counter    ``dispatched`` to the kernel
``torchweir_node_dropped_total``             counter    ``dropped``: cancelled or expired
``torchweir_node_errors_total``              counter    ``errors``, with a ``type`` label
``torchweir_node_queue_depth``               gauge      ``queued``
``torchweir_node_running``                   gauge      ``running``: in running batches
``torchweir_node_instances``                 gauge      ``instances``
``torchweir_node_busy_instances``            gauge      ``busy_instances``
``torchweir_node_busy_seconds_total``        counter    ``busy_seconds`` of all instances
``torchweir_node_batch_size``                histogram  ``batch_sizes``: 1, 2, 4, ..., max
``torchweir_node_queue_wait_seconds``        histogram  ``queue_wait_s``
``torchweir_node_run_time_seconds``          histogram  ``run_time_s``: per batch
``torchweir_runtime_pending``                gauge      submitted, not settled
``torchweir_runtime_state``                  gauge      1 for the current ``state``
``torchweir_http_requests_total``            counter    requests answered, by ``code``
``torchweir_http_requests_in_flight``        gauge      requests being handled
``torchweir_http_request_duration_seconds``  histogram  time to answer
===========================================  =========  ==================================
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence

import msgspec

from torchweir.actors.actor import NodeStatistics
from torchweir.actors.metrics import HistogramSnapshot
from torchweir.runtime.runtime import RuntimeState, RuntimeStatistics

__all__ = ["CONTENT_TYPE", "HttpStatistics", "batch_size_bounds", "render"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

Labels = tuple[tuple[str, str], ...]
Sample = tuple[str, Labels, float]  # (name suffix, labels, value)


class HttpStatistics(msgspec.Struct, frozen=True):
    """The inference endpoints' own counters (see ``torchweir.serve.app``)."""

    responses: dict[int, int]
    in_flight: int
    duration_s: HistogramSnapshot


#: Per-node metrics with one sample per node: (name, type, help, value).
_NODE_SCALARS: tuple[tuple[str, str, str, Callable[[NodeStatistics], float]], ...] = (
    ("torchweir_node_requests_total", "counter", "Requests that entered the node's mailbox.",
     lambda n: n.arrived),
    ("torchweir_node_dispatched_total", "counter", "Requests handed to the node's kernel.",
     lambda n: n.dispatched),
    ("torchweir_node_dropped_total", "counter",
     "Requests skipped before a kernel: cancelled or past their deadline.", lambda n: n.dropped),
    ("torchweir_node_queue_depth", "gauge", "Requests waiting in the node's mailbox.",
     lambda n: n.queued),
    ("torchweir_node_running", "gauge", "Requests inside batches that instances are running.",
     lambda n: n.running),
    ("torchweir_node_instances", "gauge", "Instance threads of the node.", lambda n: n.instances),
    ("torchweir_node_busy_instances", "gauge", "Instances that cannot take a batch now.",
     lambda n: n.busy_instances),
    ("torchweir_node_busy_seconds_total", "counter",
     "Instance-seconds spent running batches, summed over the node's instances.",
     lambda n: n.busy_seconds),
)  # fmt: skip

#: Per-node timing histograms: (name, help, snapshot).
_NODE_HISTOGRAMS: tuple[tuple[str, str, Callable[[NodeStatistics], HistogramSnapshot]], ...] = (
    (
        "torchweir_node_queue_wait_seconds",
        "Time requests waited in the mailbox before their batch went.",
        lambda n: n.queue_wait_s,
    ),
    (
        "torchweir_node_run_time_seconds",
        "Time each batch spent in the kernel.",
        lambda n: n.run_time_s,
    ),
)


def render(stats: RuntimeStatistics, http: HttpStatistics | None = None) -> str:
    """The exposition text for one snapshot of the runtime (and of the HTTP layer)."""
    out: list[str] = []
    nodes = stats.nodes
    for name, kind, help_text, value in _NODE_SCALARS:
        _family(out, name, kind, help_text, [("", _node(n), float(value(n))) for n in nodes])
    errors = [
        ("", (*_node(n), ("type", kind)), float(count))
        for n in nodes
        for kind, count in sorted(n.errors.items())
    ]
    _family(
        out,
        "torchweir_node_errors_total",
        "counter",
        "Failed requests attributed to the node, by error type.",
        errors,
    )
    _family(
        out,
        "torchweir_node_batch_size",
        "histogram",
        "Sizes of the batches run.",
        [s for n in nodes for s in _batch_samples(n)],
    )
    for name, help_text, histogram in _NODE_HISTOGRAMS:
        samples = [s for n in nodes for s in _histogram_samples(_node(n), histogram(n))]
        _family(out, name, "histogram", help_text, samples)
    _family(
        out,
        "torchweir_runtime_pending",
        "gauge",
        "Requests submitted and not yet settled.",
        [("", (), float(stats.pending))],
    )
    states = [("", (("state", s.value),), float(s.value == stats.state)) for s in RuntimeState]
    _family(out, "torchweir_runtime_state", "gauge", "1 for the runtime's current state.", states)
    if http is not None:
        _render_http(out, http)
    return "".join(out)


def _render_http(out: list[str], http: HttpStatistics) -> None:
    codes = [("", (("code", str(code)),), float(n)) for code, n in sorted(http.responses.items())]
    _family(
        out,
        "torchweir_http_requests_total",
        "counter",
        "Inference requests answered, by HTTP status.",
        codes,
    )
    _family(
        out,
        "torchweir_http_requests_in_flight",
        "gauge",
        "Inference requests being handled.",
        [("", (), float(http.in_flight))],
    )
    _family(
        out,
        "torchweir_http_request_duration_seconds",
        "histogram",
        "Time from reading an inference request to its response.",
        _histogram_samples((), http.duration_s),
    )


def batch_size_bounds(max_batch: int) -> tuple[int, ...]:
    """Powers of two below ``max_batch``, then ``max_batch`` itself."""
    bounds = [1 << i for i in range(max(max_batch, 1).bit_length()) if 1 << i < max_batch]
    return (*bounds, max(max_batch, 1))


def _node(n: NodeStatistics) -> Labels:
    return (("node", n.node),)


def _batch_samples(n: NodeStatistics) -> list[Sample]:
    sizes = n.batch_sizes
    bounds = batch_size_bounds(len(sizes) - 1)
    cumulative = [sum(sizes[: bound + 1]) for bound in bounds]
    total = sum(size * count for size, count in enumerate(sizes))
    return _cumulative_samples(_node(n), bounds, cumulative, float(total), sum(sizes))


def _histogram_samples(labels: Labels, h: HistogramSnapshot) -> list[Sample]:
    cumulative: list[int] = []
    running = 0
    for count in h.counts[: len(h.buckets)]:
        running += count
        cumulative.append(running)
    return _cumulative_samples(labels, h.buckets, cumulative, h.sum, h.count)


def _cumulative_samples(
    labels: Labels, bounds: Sequence[float], cumulative: Sequence[int], total: float, count: int
) -> list[Sample]:
    samples: list[Sample] = [
        ("_bucket", (*labels, ("le", _number(bound))), float(n))
        for bound, n in zip(bounds, cumulative, strict=True)
    ]
    samples.append(("_bucket", (*labels, ("le", "+Inf")), float(count)))
    samples.append(("_sum", labels, total))
    samples.append(("_count", labels, float(count)))
    return samples


def _family(
    out: list[str], name: str, kind: str, help_text: str, samples: Iterable[Sample]
) -> None:
    out.append(f"# HELP {name} {_escape_help(help_text)}\n# TYPE {name} {kind}\n")
    for suffix, labels, value in samples:
        label_text = ",".join(f'{key}="{_escape_label(v)}"' for key, v in labels)
        braces = f"{{{label_text}}}" if label_text else ""
        out.append(f"{name}{suffix}{braces} {_number(value)}\n")


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 2**53:
        return str(int(value))
    return repr(float(value))


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _escape_label(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
