"""The Runtime: lifecycle, admission and the caller-facing ``submit``.

>>> import torchweir as tw
>>> @tw.kernel(max=8)
... def double(batch):
...     return [x * 2 for x in batch]
>>> g = tw.Graph(); _ = g.node("double", double)
>>> async def main():
...     async with tw.Runtime(g) as rt:
...         return await rt.submit(21), await rt.submit_many([1, 2])
>>> tw.run(main())
(42, [2, 4])
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import msgspec

from torchweir.actors.actor import Actor, NodeStatistics
from torchweir.actors.clock import Clock, LoopClock
from torchweir.actors.mailbox import Mailbox
from torchweir.actors.malloc import keep_freed_buffers
from torchweir.actors.request import Job, Token
from torchweir.errors import ConfigError, DeadlineExceeded, RuntimeClosed, UnknownNode
from torchweir.graphs.builder import Graph
from torchweir.graphs.spec import GraphSpec
from torchweir.graphs.toml import load_toml
from torchweir.graphs.validate import closest, validate
from torchweir.runtime.build import Built, Worker, build
from torchweir.runtime.gil import lower_switch_interval, restore_switch_interval

__all__ = ["Runtime", "RuntimeState", "RuntimeStatistics"]

Overflow = Literal["wait", "reject"]


class RuntimeState(enum.Enum):
    UNSTARTED = "unstarted"
    RUNNING = "running"
    CLOSING = "closing"
    CLOSED = "closed"


class RuntimeStatistics(msgspec.Struct, frozen=True):
    """A snapshot of the runtime: its state, unsettled requests and each node."""

    state: str
    pending: int
    nodes: tuple[NodeStatistics, ...]


class Runtime:
    """Runs a graph inside the current event loop.

    Args:
        graph: a :class:`Graph`, a :class:`GraphSpec`, or the path of a TOML file.
        overflow: what ``submit`` does when the entry mailbox is full: ``"wait"`` for
            room, or ``"reject"`` with :class:`~torchweir.errors.Overloaded`.
        drain_timeout: seconds :meth:`aclose` lets pending requests finish before it
            fails the rest with :class:`~torchweir.errors.RuntimeClosed`.
        clock: the injected clock for batching timers and deadlines.
        switch_interval: while running, lower the interpreter's GIL switch interval to
            this many seconds (see :mod:`torchweir.runtime.gil`); ``None`` leaves it.
        keep_freed_buffers: at start, set glibc's malloc limits so that freed image
            buffers stay mapped instead of being faulted in afresh for every image
            (:mod:`torchweir.actors.malloc`: CPU decode a quarter faster). Process-wide,
            and left alone where the environment sets them.
    """

    def __init__(
        self,
        graph: Graph | GraphSpec | str | Path,
        *,
        overflow: Overflow = "wait",
        drain_timeout: float = 30.0,
        clock: Clock | None = None,
        switch_interval: float | None = None,
        keep_freed_buffers: bool = True,
    ) -> None:
        if overflow not in ("wait", "reject"):
            raise ValueError(f"overflow must be 'wait' or 'reject', got {overflow!r}")
        if not drain_timeout >= 0:
            raise ValueError(f"drain_timeout must be >= 0 seconds, got {drain_timeout!r}")
        if switch_interval is not None and not switch_interval > 0:
            raise ValueError(f"switch_interval must be > 0 seconds, got {switch_interval!r}")
        self.graph = _as_spec(graph)
        self._switch_interval = switch_interval
        self._keep_freed_buffers = keep_freed_buffers
        self._reject = overflow == "reject"
        self._drain_timeout = drain_timeout
        self._clock: Clock = clock if clock is not None else LoopClock()
        self._state = RuntimeState.UNSTARTED
        self._built: Built | None = None
        self._pending: set[Job] = set()
        self._drained: asyncio.Event | None = None
        self._closed: asyncio.Event | None = None

    def __repr__(self) -> str:
        return f"<Runtime {self._state.value} nodes={list(self.graph.names)}>"

    @classmethod
    def from_toml(cls, path: str | Path, **kwargs: Any) -> Runtime:
        """A runtime for the torchpipe-style TOML graph at ``path``."""
        return cls(load_toml(path), **kwargs)

    @property
    def state(self) -> RuntimeState:
        return self._state

    # -- lifecycle ---------------------------------------------------------------------

    async def __aenter__(self) -> Runtime:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def start(self) -> None:
        """Build the actors and start every instance thread (kernel setup included).

        Raises:
            RuntimeClosed: the runtime was already started.
            ConfigError: a backend is unknown or rejects its parameters.
            Exception: whatever a kernel's per-instance ``setup`` raised.
        """
        if self._state is not RuntimeState.UNSTARTED:
            raise RuntimeClosed(f"cannot start a runtime that is {self._state.value}")
        self._state = RuntimeState.RUNNING  # claims the start; reset below on failure
        if self._switch_interval is not None:
            lower_switch_interval(self._switch_interval)
        if self._keep_freed_buffers:
            keep_freed_buffers()
        try:
            built = build(self.graph, self._clock)
            await _start_workers(built)
        except BaseException:
            self._state = RuntimeState.CLOSED
            self._restore_interval()
            raise
        for name, actor in built.actors.items():
            actor.attach(built.workers[name], built.spill.get(name, ()))
        self._built = built
        self._drained = asyncio.Event()
        self._closed = asyncio.Event()

    async def aclose(self) -> None:
        """Stop admitting, let pending requests finish, fail the rest, stop the threads.

        Idempotent; a second caller waits for the first to finish. Every pending request
        ends with its result or with :class:`~torchweir.errors.RuntimeClosed`.
        """
        if self._state is RuntimeState.UNSTARTED:
            self._state = RuntimeState.CLOSED
        if self._state is RuntimeState.CLOSED:
            return
        assert self._built is not None
        assert self._closed is not None
        if self._state is RuntimeState.CLOSING:
            await self._closed.wait()
            return
        self._state = RuntimeState.CLOSING
        try:
            await self._drain()
        finally:
            await self._shut_down(self._built)
            self._state = RuntimeState.CLOSED
            self._restore_interval()
            self._closed.set()

    def _restore_interval(self) -> None:
        if self._switch_interval is not None:
            restore_switch_interval()

    def __del__(self) -> None:
        if getattr(self, "_state", None) is RuntimeState.RUNNING:
            warnings.warn(
                f"{self!r} was never closed; use `async with` or `await runtime.aclose()`",
                ResourceWarning,
                stacklevel=1,
            )

    # -- submitting --------------------------------------------------------------------

    async def submit(
        self, x: Any, *, timeout: float | None = None, node_name: str | None = None
    ) -> Any:
        """Run one request through the graph.

        Args:
            x: a bare value (wrapped as ``{"data": x}``) or a request dict with ``data``.
            timeout: seconds until :class:`~torchweir.errors.DeadlineExceeded`.
            node_name: enter the graph at this node (also read from ``x["node_name"]``).

        Returns:
            The final node's ``result`` for a bare value; for a dict, the same dict with
            ``result`` (and the keys the kernels added) set.

        Raises:
            KernelError: a kernel failed on this request (``InputError`` for bad input).
            DeadlineExceeded, Overloaded, RuntimeClosed, UnknownNode: see their docs.
        """
        job, token, actor = self._prepare(x, timeout, node_name)
        try:
            await self._admit(actor.mailbox, token, job)
            return await job.future
        finally:
            job.abandon()  # no-op once settled; else the caller left (cancelled, raised)

    async def submit_many(
        self,
        xs: Iterable[Any],
        *,
        timeout: float | None = None,
        node_name: str | None = None,
        return_exceptions: bool = False,
    ) -> list[Any]:
        """Submit several requests at once; they may share batches.

        Waits for every one of them to settle, then returns their outcomes in order. With
        ``return_exceptions=False`` the first failure (in input order) is raised instead.
        A malformed request (a dict without ``data``, an unknown ``node_name``) is then
        raised before anything runs; with ``return_exceptions=True`` it is that request's
        outcome and the others run.
        """
        prepared: list[tuple[Job, Token, Actor] | BaseException] = []
        for x in xs:
            try:
                prepared.append(self._prepare(x, timeout, node_name))
            except (ValueError, UnknownNode) as exc:  # one malformed request, not the call
                if not return_exceptions:
                    _abandon_all(prepared)
                    raise
                prepared.append(exc)
        jobs = [entry[0] for entry in prepared if not isinstance(entry, BaseException)]
        try:
            for entry in prepared:
                if not isinstance(entry, BaseException):
                    job, token, actor = entry
                    await self._admit(actor.mailbox, token, job)
            if jobs:
                await asyncio.wait([job.future for job in jobs])
        finally:
            for job in jobs:
                job.abandon()
        outcomes = [
            entry if isinstance(entry, BaseException) else _outcome_of(entry[0])
            for entry in prepared
        ]
        if not return_exceptions:
            for outcome in outcomes:
                if isinstance(outcome, BaseException):
                    raise outcome
        return outcomes

    def statistics(self) -> RuntimeStatistics:
        """A frozen snapshot of the runtime and of every node."""
        actors = self._built.actors.values() if self._built is not None else ()
        return RuntimeStatistics(
            state=self._state.value,
            pending=len(self._pending),
            nodes=tuple(actor.statistics() for actor in actors),
        )

    # -- internals ---------------------------------------------------------------------

    def _prepare(
        self, x: Any, timeout: float | None, node_name: str | None
    ) -> tuple[Job, Token, Actor]:
        if self._state is not RuntimeState.RUNNING:
            raise RuntimeClosed(f"cannot submit: the runtime is {self._state.value}")
        if isinstance(x, dict):
            if "data" not in x:
                raise ValueError(f"a request dict needs a 'data' key; got keys {sorted(x)}")
            original: dict[str, Any] | None = x
            payload = dict(x)
            payload.pop("result", None)  # a stale result never reaches the kernel
            node_name = node_name if node_name is not None else x.get("node_name")
        else:
            original = None
            payload = {"data": x}
        actor = self._entry(node_name)
        job = Job(
            asyncio.get_running_loop().create_future(),
            original,
            entry=actor.name,
            on_settle=self._settled,
        )
        if timeout is not None:
            self._set_deadline(job, timeout)
        self._pending.add(job)
        return job, Token(job, payload), actor

    def _settled(self, job: Job) -> None:
        """Every request's end: forget it, and count a failure against its node."""
        self._pending.discard(job)
        future = job.future
        if future.cancelled() or self._built is None:
            return
        error = future.exception()
        if error is not None:
            node = getattr(error, "node", None) or job.entry
            actor = self._built.actors.get(node)
            if actor is not None:
                actor.errors[type(error).__name__] += 1

    def _entry(self, node_name: str | None) -> Actor:
        assert self._built is not None
        actors = self._built.actors
        if node_name is None:
            if self._built.entry is None:
                roots = self.graph.roots()
                raise UnknownNode(
                    f"the graph has {len(roots)} roots {list(roots)}; "
                    "say where to enter with node_name"
                )
            return actors[self._built.entry]
        try:
            return actors[node_name]
        except KeyError:
            raise UnknownNode(
                f"no node {node_name!r} in the graph{closest(node_name, actors)}", node_name
            ) from None

    def _set_deadline(self, job: Job, timeout: float) -> None:
        if not timeout > 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")
        job.timeout = timeout
        job.deadline = self._clock.now() + timeout
        job.timer = self._clock.call_at(job.deadline, lambda: job.fail(DeadlineExceeded(timeout)))

    async def _admit(self, mailbox: Mailbox, token: Token, job: Job) -> None:
        if self._reject or not (mailbox.full() or mailbox.has_waiters()):
            mailbox.put_nowait(token)
            return
        if job.deadline is None:
            await mailbox.put(token)
            return
        put = asyncio.ensure_future(mailbox.put(token))
        try:  # wait for room, but no longer than the request's own deadline
            await asyncio.wait([put, job.future], return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not put.done():
                put.cancel()
        if put.done() and not put.cancelled():
            put.result()  # re-raise RuntimeClosed from a closing mailbox

    async def _drain(self) -> None:
        assert self._built is not None
        assert self._drained is not None
        closed = RuntimeClosed("the runtime closed before this request was admitted")
        for actor in self._built.actors.values():
            actor.mailbox.close(closed)
        if self._pending:
            drained = self._drained

            def settle(job: Job) -> None:
                self._settled(job)
                if not self._pending:
                    drained.set()

            for job in self._pending:
                job.on_settle = settle
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(drained.wait(), self._drain_timeout)
        for job in list(self._pending):
            job.fail(RuntimeClosed("the runtime closed before this request finished"))

    async def _shut_down(self, built: Built) -> None:
        for actor in built.actors.values():
            actor.close()
            actor.mailbox.queue.clear()
        workers = built.all_workers()
        for worker in workers:
            worker.stop()
        stuck = await asyncio.to_thread(_join_all, workers, 10.0)
        if stuck:
            warnings.warn(
                f"instance threads still running a kernel after close: {stuck}",
                RuntimeWarning,
                stacklevel=2,
            )


def _outcome_of(job: Job) -> Any:
    return job.future.exception() or job.future.result()


def _abandon_all(prepared: list[tuple[Job, Token, Actor] | BaseException]) -> None:
    for entry in prepared:
        if not isinstance(entry, BaseException):
            entry[0].abandon()


def _as_spec(graph: Graph | GraphSpec | str | Path) -> GraphSpec:
    if isinstance(graph, GraphSpec):
        validate(graph)
        return graph
    if isinstance(graph, Graph):
        return graph.spec()
    if isinstance(graph, (str, Path)):
        return load_toml(graph)
    raise TypeError(f"expected a Graph, GraphSpec or TOML path, got {type(graph).__name__}")


async def _start_workers(built: Built) -> None:
    workers = built.all_workers()
    results = await asyncio.gather(*(w.start() for w in workers), return_exceptions=True)
    failures = [r for r in results if isinstance(r, BaseException)]
    if failures:
        for worker in workers:
            worker.stop()
        await asyncio.to_thread(_join_all, workers, 10.0)
        node = next(
            w.ctx.node
            for w, r in zip(workers, results, strict=True)
            if isinstance(r, BaseException)
        )
        raise ConfigError(
            f"an instance failed to set up: {type(failures[0]).__name__}: {failures[0]}",
            node=node,
        ) from failures[0]


def _join_all(workers: list[Worker], timeout: float) -> list[str]:
    return [repr(w) for w in workers if not w.join(timeout)]
