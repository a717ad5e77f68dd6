"""The actor: one graph node's mailbox, batch policy and instance workers.

An actor is a small state machine driven by event-loop callbacks rather than a task of
its own: arrivals and timers schedule one ``_pump`` with ``call_soon``. Coalescing them
this way means that the hundreds of submits landing in one loop iteration are cut into one
batch, and no coroutine switch is paid per request. A finished batch pumps at once, before
its results are routed, so the freed instance starts its next batch without waiting for
them (6-8 % more throughput for a two-stage pipeline of sleeping kernels on 2 cores,
``benchmarks/pipeline_efficiency.py``).

``_pump`` first requires a free instance, *then* cuts a batch, so while every instance
is busy the queue keeps growing and the next batch is larger. It dispatches to each free
instance in turn without waiting for any batch to finish.

An instance may accept more than one batch at once (``prefetch``, or a CUDA completion
by stream callback). Such a slot *ahead* of a running batch takes only a full batch, and
only once every idle instance has one. A partial batch waiting behind a running one gains
nothing, and the queue is shared out over idle instances only. Otherwise prefetch halves
every batch at moderate load and can park work behind a busy instance while another
sits idle.

A node may have a spill pool (:mod:`torchweir.graphs.spill`): instances of a second
backend, with their own batch policy, listed after the node's own. Taking the instance
holding the fewest batches, the first such, gives the order: an idle instance of the node,
then an idle one of the pool, then slots ahead of running batches. So the pool takes work
only while every instance of the node is busy.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Protocol

import msgspec

from torchweir.actors.clock import Clock, Timer
from torchweir.actors.mailbox import Mailbox
from torchweir.actors.metrics import Histogram, HistogramSnapshot
from torchweir.actors.policy import BatchPolicy
from torchweir.actors.request import Token
from torchweir.actors.routing import Links
from torchweir.actors.worker import Errors
from torchweir.errors import DeadlineExceeded


class Worker(Protocol):
    """What an actor needs of an instance: take a batch and report back later."""

    def run(self, batch: list[Token]) -> None: ...


def _depth(worker: Worker) -> int:
    return int(getattr(worker, "depth", 1))


RouteFn = Callable[["Actor", list[Token], Errors], None]


class NodeStatistics(msgspec.Struct, frozen=True):
    """A snapshot of one node's counters (see :meth:`Actor.statistics`).

    Attributes:
        node: the node's name.
        queued: tokens waiting in the mailbox.
        running: tokens inside batches that instances are running.
        arrived: tokens that ever entered the mailbox.
        dispatched: tokens handed to kernels.
        dropped: tokens skipped before a kernel, because the caller cancelled or the
            deadline passed.
        batches: batches handed to kernels.
        batch_sizes: ``batch_sizes[n]`` counts the batches of size ``n``.
        instances: the node's instance count.
        busy_instances: instances that cannot take another batch now.
        queue_wait_s: how long requests waited in the mailbox before their batch went.
        run_time_s: how long each batch took in the kernel (its instance's thread).
        busy_seconds: instance-seconds spent running batches, summed over instances.
        errors: failed requests attributed to this node, by error type.
        spill_instances: how many of ``instances`` form the spill pool.
        spilled: tokens handed to the spill pool (counted in ``dispatched`` too).
    """

    node: str
    queued: int
    running: int
    arrived: int
    dispatched: int
    dropped: int
    batches: int
    batch_sizes: tuple[int, ...]
    instances: int
    busy_instances: int
    queue_wait_s: HistogramSnapshot
    run_time_s: HistogramSnapshot
    busy_seconds: float
    errors: dict[str, int]
    spill_instances: int = 0
    spilled: int = 0


class Actor:
    """One graph node at run time.

    Args:
        name: the node's name.
        policy: when to cut batches.
        mailbox: the node's queue; the actor hooks its arrival callback.
        clock: the injected clock (timers and deadlines).
        route: called with each finished batch to pass tokens on or settle jobs.
        spill_policy: when to cut batches for the spill pool, if the node has one.
    """

    def __init__(
        self,
        name: str,
        policy: BatchPolicy,
        mailbox: Mailbox,
        clock: Clock,
        route: RouteFn,
        *,
        spill_policy: BatchPolicy | None = None,
    ) -> None:
        self.name = name
        self.policy = policy
        self.spill_policy = spill_policy
        self.mailbox = mailbox
        self.links = Links()
        self.children: list[Actor] = []
        self.parents: list[Actor] = []
        self.ancestors: tuple[Actor, ...] = ()
        self.descendants: tuple[Actor, ...] = ()
        self.load = 0  # tokens queued here or inside a running batch
        self._clock = clock
        self._route = route
        self._workers: list[Worker] = []
        self._own = 0  # instances of the node itself; the spill pool's follow them
        self._running: list[int] = []  # batches each instance holds, by position
        self._depths: list[int] = []  # batches each instance accepts at once
        self._positions: dict[int, int] = {}  # id(worker) -> position
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pump_scheduled = False
        self._timer: Timer | None = None
        self._timer_at: float | None = None
        self._arrived = 0
        self._dispatched = 0
        self._dropped = 0
        self._batches = 0
        self._spilled = 0
        largest = max(policy.max_batch, spill_policy.max_batch if spill_policy else 0)
        self._batch_sizes = [0] * (largest + 1)
        self._queue_wait = Histogram()
        #: Failed requests attributed to this node, by error type (kept by the runtime).
        self.errors: Counter[str] = Counter()
        mailbox.on_arrival = self._on_arrival

    def __repr__(self) -> str:
        idle = self._running.count(0)
        return f"<Actor {self.name} load={self.load} idle={idle}/{len(self._workers)}>"

    def attach(self, workers: Sequence[Worker], spill: Sequence[Worker] = ()) -> None:
        """Bind the started instances, the node's own and its spill pool's; must run on
        the event loop's thread.

        Raises:
            ValueError: a spill pool without a ``spill_policy``.
        """
        if spill and self.spill_policy is None:
            raise ValueError(f"node {self.name!r} has spill instances but no spill_policy")
        self._loop = asyncio.get_running_loop()
        self._own = len(workers)
        self._workers = [*workers, *spill]
        self._depths = [_depth(w) for w in self._workers]
        self._running = [0] * len(self._workers)
        self._positions = {id(w): i for i, w in enumerate(self._workers)}

    def upstream_load(self) -> int:
        """Tokens in flight at ancestors, which could still join a batch here."""
        return sum(actor.load for actor in self.ancestors)

    def schedule_pump(self) -> None:
        """Ask for one ``_pump`` on the next loop iteration (idempotent until it runs)."""
        if not self._pump_scheduled and self._loop is not None:
            self._pump_scheduled = True
            self._loop.call_soon(self._pump)

    def batch_done(self, worker: Worker, batch: list[Token], errors: Errors) -> None:
        """Take back a finished batch (on the loop thread): free the worker, hand it its
        next batch, then route this one.

        Cutting the next batch first keeps the instance's idle gap to the hand-off itself:
        routing a batch's results and waiting for the next loop iteration would add to it
        (tenths of a millisecond per batch under load). It goes first only where the
        children have room for these results, so backpressure holds as if they had landed.
        """
        self._running[self._position(worker)] -= 1
        self.load -= len(batch)
        if self._loop is not None and not self._downstream_full(len(batch)):  # not closed
            self._pump()
        self._route(self, batch, errors)
        self.schedule_pump()
        self._wake_waiting_descendants()

    def close(self) -> None:
        """Stop cutting batches; queued tokens are left for the runtime to fail."""
        self._cancel_timer()
        self._loop = None  # schedule_pump becomes a no-op

    def statistics(self) -> NodeStatistics:
        """A frozen snapshot of this node's counters."""
        queued = len(self.mailbox)
        run_time = Histogram().snapshot()
        busy = 0.0
        for worker in self._workers:
            timings = getattr(worker, "timings", None)
            if timings is not None:
                run_time = run_time.merged(timings.snapshot())
            busy += getattr(worker, "busy_seconds", 0.0)
        return NodeStatistics(
            node=self.name,
            queued=queued,
            running=self.load - queued,
            arrived=self._arrived,
            dispatched=self._dispatched,
            dropped=self._dropped,
            batches=self._batches,
            batch_sizes=tuple(self._batch_sizes),
            instances=len(self._workers),
            busy_instances=sum(
                held >= depth for held, depth in zip(self._running, self._depths, strict=True)
            ),
            queue_wait_s=self._queue_wait.snapshot(),
            run_time_s=run_time,
            busy_seconds=busy,
            errors=dict(self.errors),
            spill_instances=len(self._workers) - self._own,
            spilled=self._spilled,
        )

    def _on_arrival(self, count: int) -> None:
        self.load += count
        self._arrived += count
        self.schedule_pump()

    def _pump(self) -> None:
        self._pump_scheduled = False
        queue = self.mailbox.queue
        while queue:
            slot = self._next_slot()
            if slot is None:
                break
            policy = self._policy_of(slot)
            if self._running[slot] and len(queue) < policy.max_batch:
                break  # only slots ahead of running batches are left: they take full ones
            if self._downstream_full():
                return  # a child's pump wakes us once it drains
            was_full = self.mailbox.full()
            now = self._clock.now()
            idle = self._idle_in_pool_of(slot)
            batch = self.mailbox.take(policy, now, self.upstream_load(), max(idle, 1))
            if batch is None:
                self._arm_timer(queue[0].arrived + policy.timeout)
                return
            if was_full:
                for parent in self.parents:
                    parent.schedule_pump()
            live = self._drop_settled(batch, now)
            if live:
                self._dispatch(slot, live, now)
        self._cancel_timer()

    def _next_slot(self) -> int | None:
        """The instance to take the next batch: the one holding the fewest (the first
        such), or ``None`` when every instance is full."""
        best: int | None = None
        for i, (held, depth) in enumerate(zip(self._running, self._depths, strict=True)):
            if held < depth and (best is None or held < self._running[best]):
                best = i
        return best

    def _policy_of(self, slot: int) -> BatchPolicy:
        if slot < self._own or self.spill_policy is None:
            return self.policy
        return self.spill_policy

    def _idle_in_pool_of(self, slot: int) -> int:
        """Idle instances of ``slot``'s pool, over which the queue is shared out."""
        pool = self._running[: self._own] if slot < self._own else self._running[self._own :]
        return pool.count(0)

    def _position(self, worker: Worker) -> int:
        position = self._positions.get(id(worker))
        if position is None:
            raise ValueError(f"{worker!r} is not an instance of node {self.name!r}")
        return position

    def _drop_settled(self, batch: list[Token], now: float) -> list[Token]:
        """Remove tokens whose caller is gone or whose deadline passed, before any kernel."""
        live = []
        for token in batch:
            job = token.job
            if job.future.done():
                continue
            if job.deadline is not None and job.deadline <= now:
                job.fail(DeadlineExceeded(job.timeout or 0.0, node=self.name))
                continue
            live.append(token)
        dropped = len(batch) - len(live)
        if dropped:
            self._dropped += dropped
            self.load -= dropped
            self._wake_waiting_descendants()
        return live

    def _dispatch(self, slot: int, batch: list[Token], now: float) -> None:
        worker = self._workers[slot]
        self._running[slot] += 1
        size = len(batch)
        wait = self._queue_wait
        for token in batch:
            wait.observe(now - token.arrived)
        self._batches += 1
        self._dispatched += size
        if slot >= self._own:
            self._spilled += size
        self._batch_sizes[min(size, len(self._batch_sizes) - 1)] += 1
        worker.run(batch)

    def _downstream_full(self, results: int = 0) -> bool:
        """Whether some child would be at its capacity with ``results`` more tokens."""
        return any(
            len(child.mailbox) + results >= child.mailbox.capacity for child in self.children
        )

    def _wake_waiting_descendants(self) -> None:
        # Load left the graph above them: they may no longer need to wait for batch-mates.
        for actor in self.descendants:
            if actor._timer is not None:
                actor.schedule_pump()

    def _arm_timer(self, when: float) -> None:
        if self._timer is not None and self._timer_at == when:
            return
        self._cancel_timer()
        self._timer_at = when
        self._timer = self._clock.call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        self.schedule_pump()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
            self._timer_at = None
