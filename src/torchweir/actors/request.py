"""The request envelope: one :class:`Job` per submit, one :class:`Token` per branch copy.

A job owns the caller's future and settles it exactly once, through set-if-not-done
helpers, so a cancelled caller, a deadline timer and a late kernel result can race
without raising ``InvalidStateError`` or resolving twice. Tokens are what mailboxes
queue and kernels see (through ``token.payload``); fan-out makes one token per branch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from torchweir.actors.clock import Timer
from torchweir.errors import KernelError

Payload = dict[str, Any]


class Job:
    """One submitted request and the bookkeeping that settles it once.

    Attributes:
        future: the caller's future; done means settled (or cancelled by the caller).
        original: the caller's dict, or ``None`` if a bare value was submitted.
        entry: the node where the request entered the graph.
        timeout: the caller's timeout in seconds, or ``None``.
        deadline: clock time after which the request is failed, or ``None``.
        branches: tokens of this job still travelling through the graph.
        leaves: ``(node, payload)`` of each branch that reached a leaf node.
        joins: per join node, what each parent delivered so far (created on demand).
        outputs: outputs of nodes that a later ``map`` reads (created on demand).
    """

    __slots__ = (
        "branches",
        "deadline",
        "entry",
        "future",
        "joins",
        "leaves",
        "on_settle",
        "original",
        "outputs",
        "timeout",
        "timer",
    )

    def __init__(
        self,
        future: asyncio.Future[Any],
        original: Payload | None,
        *,
        entry: str = "",
        timeout: float | None = None,
        deadline: float | None = None,
        on_settle: Callable[[Job], None] | None = None,
    ) -> None:
        self.future = future
        self.original = original
        self.entry = entry
        self.timeout = timeout
        self.deadline = deadline
        self.on_settle = on_settle
        self.timer: Timer | None = None
        self.branches = 1
        self.leaves: list[tuple[str, Payload]] = []
        self.joins: dict[str, dict[str, tuple[Payload, BaseException | None]]] | None = None
        self.outputs: dict[str, Payload] | None = None

    def done(self) -> bool:
        """Whether the caller no longer waits: settled, timed out or cancelled."""
        return self.future.done()

    def fail(self, error: BaseException) -> None:
        """Fail the request with ``error`` unless it is already settled."""
        if not self.future.done():
            self.future.set_exception(error)
        self._settled()

    def resolve(self, value: Any) -> None:
        """Resolve the request with ``value`` unless it is already settled."""
        if not self.future.done():
            self.future.set_result(value)
        self._settled()

    def abandon(self) -> None:
        """The caller stopped waiting (cancelled, or admission failed): settle as cancelled."""
        if not self.future.done():
            self.future.cancel()
        self._settled()

    def reach_leaf(self, node: str, payload: Payload) -> None:
        """Record one branch's arrival at a leaf; resolve once every branch is in."""
        self.leaves.append((node, payload))
        self.branches -= 1
        if self.branches == 0:
            self.finish()

    def absorb(self) -> None:
        """A branch waits in a join buffer: it no longer counts as travelling."""
        self.branches -= 1
        if self.branches == 0:
            self.finish()

    def finish(self) -> None:
        """Every branch is in: resolve from the leaves (or fail if a join starved)."""
        if self.joins:
            starved = ", ".join(
                f"{node!r} got {sorted(got)} only" for node, got in self.joins.items()
            )
            self.fail(KernelError(f"join never completed: {starved}"))
            return
        try:
            value = self._outcome()
        except Exception as exc:  # never leave the caller hanging
            self.fail(exc)
        else:
            self.resolve(value)

    def end_early(self, payload: Payload) -> None:
        """``Break``: the request ends now and ``payload`` is its final dict.

        A bare submit gets the dict itself; a dict submit gets its own dict updated.
        """
        if self.original is None:
            self.resolve(payload)
            return
        final = dict(payload)
        final.pop("data", None)
        self.original.update(final)
        self.resolve(self.original)

    def record(self, node: str, payload: Payload) -> None:
        """Keep a copy of ``node``'s output for a later ``map`` that reads it."""
        if self.outputs is None:
            self.outputs = {}
        self.outputs[node] = dict(payload)

    def _outcome(self) -> Any:
        """The caller's return value, from the leaf payload(s).

        With one leaf, its ``result`` (bare submit) or the caller's dict updated with the
        leaf's keys. With several leaves (fan-out without a join), ``result`` is a dict
        ``{leaf_name: result}``; torchpipe drops the result in that case, we keep all.
        """
        if len(self.leaves) == 1:
            node, final = self.leaves[0]
            result = _result_of(node, final)
        else:
            final = {}
            result = {node: _result_of(node, payload) for node, payload in self.leaves}
        if self.original is None:
            return result
        final.pop("data", None)  # the caller keeps its own input, as torchpipe does
        self.original.update(final)
        self.original["result"] = result
        return self.original

    def _settled(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.on_settle is not None:
            on_settle, self.on_settle = self.on_settle, None
            on_settle(self)


def _result_of(node: str, payload: Payload) -> Any:
    try:
        return payload["result"]
    except KeyError:
        raise KernelError("produced no 'result'", node=node) from None


class Token:
    """One copy of a job travelling through the graph; what mailboxes queue."""

    __slots__ = ("arrived", "job", "payload")

    def __init__(self, job: Job, payload: Payload, arrived: float = 0.0) -> None:
        self.job = job
        self.payload = payload
        self.arrived = arrived

    def __repr__(self) -> str:
        return f"<Token arrived={self.arrived:.6f} keys={sorted(self.payload)}>"
