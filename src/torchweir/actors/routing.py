"""Routing a finished batch: fail, settle, or hand tokens on to the next actors.

Runs on the loop thread, once per batch, and moves tokens on as whole lists (one
``Mailbox.deliver`` per child), so a hop costs a few dict operations per request.

What happens between a node and its child follows torchpipe's ``PipelineV3``:

1. The child gets a shallow copy of the parent's dict (fan-out: one copy per child).
2. A child with several parents (a join) waits until every parent that the request can
   reach has delivered, then builds its input with its ``map``.
3. The child's filter decides: run it (``swap``, the default, first moves ``result`` into
   ``data``), skip it, skip a chain or subgraph, end the request (``Break``), or fail it.

A parent that failed an item hands the error on: the request fails with it, unless the
child is a fallback (``filter = "or"``), which then runs on the same ``data``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from torchweir.actors.request import Job, Payload, Token
from torchweir.actors.worker import Errors
from torchweir.errors import KernelError
from torchweir.kernels.filters import FilterFn, Status, swap

if TYPE_CHECKING:
    from torchweir.actors.actor import Actor

#: ``(source node or "" for the first parent, ((src_key, dst_key), ...))``
MapRule = tuple[str, tuple[tuple[str, str], ...]]
#: The nodes a skip folds, and ``(exit actor, folded parent it is reached through)``.
Fold = tuple[tuple[str, ...], tuple[tuple["Actor", str], ...]]
Pending = dict["Actor", list[Token]]


@dataclass(eq=False)
class Links:
    """How requests reach one node and leave it (fixed when the graph is built).

    Attributes:
        filter_name: the configured filter ("" for the default).
        filter: the filter function applied on arrival.
        fallback: whether the filter also runs for items whose parent failed (``or``).
        map_rules: the parsed ``map``, if any.
        parents: the node's parents, in declaration order.
        joins: for each entry node, how many parents deliver when a request enters there;
            present only where that is more than one.
        serial: what ``SerialSkip`` folds here, computed only if the filter can return it.
        subgraph: what ``SubGraphSkip`` folds here, likewise.
        record: whether a later ``map`` reads this node's output by name.
    """

    filter_name: str = ""
    filter: FilterFn = swap
    fallback: bool = False
    map_rules: tuple[MapRule, ...] = ()
    parents: tuple[str, ...] = ()
    joins: dict[str, int] = field(default_factory=dict)
    serial: Fold = ((), ())
    subgraph: Fold = ((), ())
    record: bool = False


def route(actor: Actor, batch: list[Token], errors: Errors) -> None:
    """Settle or forward every token of a batch that ``actor``'s kernel finished."""
    pending: Pending = {}
    for i, token in enumerate(batch):
        if not token.job.future.done():
            produced(actor, token, None if errors is None else errors[i], pending)
    for child, tokens in pending.items():
        child.mailbox.deliver(tokens)


def produced(node: Actor, token: Token, error: BaseException | None, pending: Pending) -> None:
    """``node`` is done with ``token`` (it ran, or was skipped): pass its output on."""
    job = token.job
    if node.links.record and error is None:
        job.record(node.name, token.payload)
    if node.children:
        fan_out(job, [(child, node.name) for child in node.children], token, error, pending)
    elif error is not None:
        job.fail(error)
    elif "result" not in token.payload:
        job.fail(KernelError("kernel left no 'result' for this request", node=node.name))
    else:
        job.reach_leaf(node.name, token.payload)


def fan_out(
    job: Job,
    targets: list[tuple[Actor, str]],
    token: Token,
    error: BaseException | None,
    pending: Pending,
) -> None:
    """Send ``token`` to each ``(child, via parent)``; all but the last get a copy."""
    job.branches += len(targets) - 1
    last = len(targets) - 1
    for k, (child, via) in enumerate(targets):
        if job.future.done():
            return
        branch = token if k == last else Token(job, dict(token.payload))
        arrive(child, via, branch, error, pending)


def arrive(
    node: Actor, parent: str, token: Token, error: BaseException | None, pending: Pending
) -> None:
    """One token reaches ``node`` from ``parent``: join, map, filter, then act on it."""
    job = token.job
    links = node.links
    if links.joins.get(job.entry, 1) > 1:
        merged = _join(node, parent, token, error)
        if merged is None:
            return
        token, error = merged
    elif links.map_rules and error is None:
        token, error = _mapped(node, job, {parent: token.payload})
    if error is not None:
        if not links.fallback:
            job.fail(error)
            return
        token.payload.pop("result", None)
        status = Status.RUN  # the fallback runs on the same data
    else:
        status = links.filter(token.payload)
    _act(node, parent, token, status, pending)


def _act(node: Actor, parent: str, token: Token, status: Status, pending: Pending) -> None:
    job = token.job
    if status is Status.RUN:
        token.payload.pop("result", None)
        pending.setdefault(node, []).append(token)
    elif status is Status.SKIP:
        produced(node, token, None, pending)
    elif status is Status.BREAK:
        job.end_early(token.payload)
    elif status is Status.NO_RESULT:
        job.fail(KernelError("kernel left no 'result' for this request", node=parent))
    elif status is Status.ERROR:
        job.fail(
            KernelError(f"filter {node.links.filter_name!r} stopped the request", node=node.name)
        )
    else:
        _skip_region(node, token, status, pending)


def _skip_region(node: Actor, token: Token, status: Status, pending: Pending) -> None:
    """``SerialSkip`` / ``SubGraphSkip``: the folded nodes all output this dict."""
    folded, exits = node.links.serial if status is Status.SERIAL_SKIP else node.links.subgraph
    job = token.job
    for name in folded:
        job.record(name, token.payload)  # a later map may read any folded node
    if exits:
        fan_out(job, list(exits), token, None, pending)
    elif "result" in token.payload:
        job.reach_leaf(folded[-1], token.payload)
    else:
        job.fail(KernelError("skipped to the end of the graph with no 'result'", node=node.name))


def _join(
    node: Actor, parent: str, token: Token, error: BaseException | None
) -> tuple[Token, BaseException | None] | None:
    """Buffer one parent's delivery; once all are in, return the merged token."""
    job = token.job
    if job.joins is None:
        job.joins = {}
    buffer = job.joins.setdefault(node.name, {})
    buffer[parent] = (token.payload, error)
    if len(buffer) < node.links.joins[job.entry]:
        job.absorb()
        return None
    del job.joins[node.name]  # this last delivery carries on as the merged branch
    for _, parent_error in buffer.values():
        if parent_error is not None:
            return token, parent_error
    return _mapped(node, job, {name: payload for name, (payload, _) in buffer.items()})


def _mapped(
    node: Actor, job: Job, delivered: dict[str, Payload]
) -> tuple[Token, BaseException | None]:
    """Build ``node``'s input from its ``map`` over what its parents delivered."""
    links = node.links
    built: Payload = {}
    first: Payload | None = None
    for source, pairs in links.map_rules:
        name = source or next(p for p in links.parents if p in delivered)
        payload = delivered.get(name)
        if payload is None and job.outputs is not None:
            payload = job.outputs.get(name)
        if payload is None:
            error = KernelError(
                f"map reads {name!r}, which this request did not pass through", node=node.name
            )
            return Token(job, {}), error
        first = payload if first is None else first
        for src_key, dst_key in pairs:
            if src_key not in payload:
                error = KernelError(
                    f"map reads key {src_key!r} of {name!r}, which has keys {sorted(payload)}",
                    node=node.name,
                )
                return Token(job, {}), error
            built[dst_key] = payload[src_key]
    assert first is not None  # parse_map guarantees at least one rule
    for key in ("node_name", "context"):
        if key in first and key not in built:
            built[key] = first[key]
    return Token(job, built), None
