from __future__ import annotations

import asyncio

import pytest
from tests.helpers import ManualWorker, settle, token

from torchweir.actors.actor import Actor
from torchweir.actors.clock import FakeClock
from torchweir.actors.mailbox import Mailbox
from torchweir.actors.policy import BatchPolicy
from torchweir.actors.request import Job, Token
from torchweir.actors.routing import route
from torchweir.actors.worker import Errors
from torchweir.errors import DeadlineExceeded

pytestmark = pytest.mark.asyncio


def make_actor(
    name: str, clock: FakeClock, *, max_batch: int = 4, timeout: float = 0.0, instances: int = 1
) -> tuple[Actor, list[ManualWorker]]:
    actor = Actor(name, BatchPolicy(max_batch, timeout), Mailbox(name, 1000, clock), clock, route)
    workers = [ManualWorker() for _ in range(instances)]
    actor.attach(workers)
    return actor, workers


def sizes(worker: ManualWorker) -> list[int]:
    return [len(b) for b in worker.batches]


async def test_batches_grow_while_the_only_instance_is_busy() -> None:
    clock = FakeClock()
    actor, [worker] = make_actor("n", clock, max_batch=4)
    actor.mailbox.put_nowait(token(0))
    await settle()
    assert sizes(worker) == [1]  # nothing upstream: no waiting, go at once
    for i in range(1, 7):
        actor.mailbox.put_nowait(token(i))
    await settle()
    assert sizes(worker) == [1]  # the instance is busy: the queue grows instead
    worker.finish(actor)
    await settle()
    assert sizes(worker) == [1, 4]  # a free instance takes a full batch
    worker.finish(actor)
    await settle()
    assert sizes(worker) == [1, 4, 2]
    assert [t.payload["data"] for b in worker.batches for t in b] == list(range(7))


async def test_dispatches_to_each_free_instance_without_waiting_for_the_first() -> None:
    clock = FakeClock()
    actor, workers = make_actor("n", clock, max_batch=2, instances=3)
    for i in range(6):
        actor.mailbox.put_nowait(token(i))
    await settle()
    assert [sizes(w) for w in workers] == [[2], [2], [2]]
    assert actor.statistics().busy_instances == 3


async def test_a_queue_is_shared_over_idle_instances() -> None:
    clock = FakeClock()
    actor, workers = make_actor("n", clock, max_batch=64, instances=4)
    actor.mailbox.deliver([token(i) for i in range(8)])
    await settle()
    assert [sizes(w) for w in workers] == [[2], [2], [2], [2]]


async def test_waits_for_batch_mates_only_while_upstream_is_in_flight() -> None:
    clock = FakeClock()
    parent, [p_worker] = make_actor("parent", clock, max_batch=1)
    child, [c_worker] = make_actor("child", clock, max_batch=4, timeout=0.5)
    parent.children = [child]
    child.parents = [parent]
    child.ancestors = (parent,)
    parent.descendants = (child,)

    parent.mailbox.put_nowait(token("a"))
    parent.mailbox.put_nowait(token("b"))
    await settle()
    p_worker.finish(parent, str.upper)  # "A" moves on; "b" is still upstream
    await settle()
    assert len(child.mailbox) == 1
    assert sizes(c_worker) == []  # waits: "b" could still join

    clock.advance(0.375)
    await settle()
    assert sizes(c_worker) == []  # not before the deadline

    clock.advance(0.125)
    await settle()
    assert sizes(c_worker) == [1]  # deadline of the oldest item reached


async def test_stops_waiting_when_the_upstream_empties() -> None:
    clock = FakeClock()
    parent, [p_worker] = make_actor("parent", clock, max_batch=2)
    child, [c_worker] = make_actor("child", clock, max_batch=4, timeout=10.0)
    parent.children, child.parents = [child], [parent]
    child.ancestors, parent.descendants = (parent,), (child,)

    parent.mailbox.put_nowait(token("a"))
    parent.mailbox.put_nowait(token("b"))
    parent.mailbox.put_nowait(token("c"))
    await settle()
    p_worker.finish(parent)  # a, b reach the child; c is upstream
    await settle()
    assert sizes(c_worker) == []
    p_worker.finish(parent)  # c arrives, nothing upstream: no reason to wait 10 s
    await settle()
    assert sizes(c_worker) == [3]
    assert clock.now() == 0.0


async def test_cancelled_and_expired_requests_never_reach_the_kernel() -> None:
    clock = FakeClock()
    actor, [worker] = make_actor("n", clock, max_batch=8)
    loop = asyncio.get_running_loop()
    busy = token("busy")
    actor.mailbox.put_nowait(busy)
    await settle()

    cancelled = token("cancelled")
    expired_job = Job(loop.create_future(), None, timeout=1.0, deadline=1.0)
    expired = Token(expired_job, {"data": "expired"})
    alive = token("alive")
    for t in (cancelled, expired, alive):
        actor.mailbox.put_nowait(t)
    cancelled.job.future.cancel()
    clock.advance(1.0)  # the deadline passes while the items queue
    worker.finish(actor)
    await settle()

    assert [[t.payload["data"] for t in b] for b in worker.batches] == [["busy"], ["alive"]]
    with pytest.raises(DeadlineExceeded, match=r"within its timeout of 1 s .*node 'n'"):
        expired_job.future.result()
    stats = actor.statistics()
    assert (stats.dropped, stats.dispatched, stats.queued) == (2, 2, 0)


async def test_holds_back_while_a_child_mailbox_is_full() -> None:
    clock = FakeClock()
    parent, [p_worker] = make_actor("parent", clock, max_batch=1)
    child = Actor("child", BatchPolicy(1), Mailbox("child", 1, clock), clock, route)
    c_worker = ManualWorker()
    child.attach([c_worker])
    parent.children, child.parents = [child], [parent]

    for x in "abc":
        parent.mailbox.put_nowait(token(x))
    await settle()
    p_worker.finish(parent)  # a -> child, which runs it at once
    await settle()
    p_worker.finish(parent)  # b -> child's mailbox, now full (capacity 1)
    await settle()
    assert len(child.mailbox) == 1
    assert sizes(p_worker) == [1, 1]  # c is held back: the child has no room
    c_worker.finish(child)  # child takes b, which frees room and wakes the parent
    await settle()
    assert sizes(p_worker) == [1, 1, 1]


async def test_a_freed_instance_gets_its_next_batch_before_the_results_are_routed() -> None:
    clock = FakeClock()
    seen: list[int] = []  # batches the worker held when each finished batch was routed

    def recording_route(actor: Actor, batch: list[Token], errors: Errors) -> None:
        seen.append(len(worker.batches))
        route(actor, batch, errors)

    child_capacity = 3
    actor = Actor("n", BatchPolicy(2), Mailbox("n", 100, clock), clock, recording_route)
    [worker] = workers = [ManualWorker()]
    actor.attach(workers)
    child = Actor("child", BatchPolicy(8), Mailbox("child", child_capacity, clock), clock, route)
    busy_child = ManualWorker()
    child.attach([busy_child])
    actor.children, child.parents = [child], [actor]
    child.mailbox.put_nowait(token("busy"))  # the child's instance stays busy: its queue grows
    await settle()

    for i in range(6):
        actor.mailbox.put_nowait(token(i))
    await settle()
    worker.finish(actor)  # the child has room for 2 more: the next batch goes first
    assert seen == [2]
    await settle()
    worker.finish(actor)  # 2 queued + 2 would fill the child: route first, then hold back
    assert seen == [2, 2]
    await settle()
    assert sizes(worker) == [2, 2]  # the child is full: backpressure as before
    assert len(child.mailbox) == 4


async def test_routes_results_to_children_as_data_and_settles_leaves() -> None:
    clock = FakeClock()
    parent, [p_worker] = make_actor("parent", clock)
    left, [l_worker] = make_actor("left", clock)
    right, [r_worker] = make_actor("right", clock)
    parent.children = [left, right]
    t = token(2)
    parent.mailbox.put_nowait(t)
    await settle()
    p_worker.finish(parent, lambda x: x * 10)
    await settle()
    [l_batch] = l_worker.batches
    [r_batch] = r_worker.batches
    assert l_batch[0].payload == {"data": 20} == r_batch[0].payload
    assert l_batch[0].payload is not r_batch[0].payload  # fan-out copies the dict
    l_worker.finish(left, lambda x: x + 1)
    await settle()
    assert not t.job.future.done()  # one branch still out
    r_worker.finish(right, lambda x: x + 2)
    await settle()
    assert t.job.future.result() == {"left": 21, "right": 22}


class DeepWorker(ManualWorker):
    """An instance that accepts two batches at once (prefetch=1, or callback completion)."""

    depth = 2

    def __init__(self) -> None:
        super().__init__()
        self.done = 0  # batches reported finished, oldest first

    def run(self, batch: list[Token]) -> None:
        assert len(self.batches) - self.done < self.depth, "more batches than slots"
        self.batches.append(batch)


async def test_an_instance_with_depth_two_gets_a_second_batch_before_the_first_ends() -> None:
    clock = FakeClock()
    actor = Actor("n", BatchPolicy(2), Mailbox("n", 100, clock), clock, route)
    first, second = DeepWorker(), DeepWorker()
    actor.attach([first, second])
    actor.mailbox.deliver([token(i) for i in range(10)])
    await settle()
    # every instance gets one batch before any gets its second; then each holds two
    assert [sizes(first), sizes(second)] == [[2, 2], [2, 2]]
    assert actor.statistics().busy_instances == 2
    assert [t.payload["data"] for t in first.batches[0]] == [0, 1]
    assert [t.payload["data"] for t in second.batches[0]] == [2, 3]
    finish_first(actor, first)
    await settle()
    assert sizes(first) == [2, 2, 2]  # a freed slot takes the next batch at once


def deep_actor(max_batch: int, instances: int = 2) -> tuple[Actor, list[DeepWorker]]:
    clock = FakeClock()
    actor = Actor("n", BatchPolicy(max_batch), Mailbox("n", 100, clock), clock, route)
    workers = [DeepWorker() for _ in range(instances)]
    actor.attach(workers)
    return actor, workers


def finish_first(actor: Actor, worker: DeepWorker) -> None:
    """Report the oldest batch ``worker`` still holds as done."""
    batch = worker.batches[worker.done]
    worker.done += 1
    for t in batch:
        t.payload["result"] = t.payload["data"]
    actor.batch_done(worker, batch, None)


async def test_a_slot_ahead_of_a_running_batch_takes_only_a_full_batch() -> None:
    actor, [first, second] = deep_actor(max_batch=4)
    actor.mailbox.deliver([token(i) for i in range(3)])
    await settle()
    assert [sizes(first), sizes(second)] == [[2], [1]]  # shared over the idle instances
    actor.mailbox.deliver([token(i) for i in range(3, 6)])
    await settle()
    # both instances run a batch: 3 queued images would only wait behind one of them
    assert [sizes(first), sizes(second)] == [[2], [1]]
    assert actor.statistics().busy_instances == 0  # each could still take a full batch
    actor.mailbox.deliver([token(i) for i in range(6, 11)])
    await settle()
    assert [sizes(first), sizes(second)] == [[2, 4], [1, 4]]  # 8 queued: two full batches
    assert len(actor.mailbox) == 0


async def test_the_next_batch_goes_to_an_idle_instance_before_a_busy_one() -> None:
    actor, [first, second] = deep_actor(max_batch=2)
    actor.mailbox.deliver([token(i) for i in range(8)])
    await settle()
    assert [sizes(first), sizes(second)] == [[2, 2], [2, 2]]
    finish_first(actor, second)
    finish_first(actor, second)  # second is idle
    finish_first(actor, first)  # first still runs one, and was freed last
    actor.mailbox.deliver([token(8), token(9)])
    await settle()
    assert [sizes(first), sizes(second)] == [[2, 2], [2, 2, 2]]


async def test_the_queue_is_shared_over_idle_instances_not_their_slots() -> None:
    actor, workers = deep_actor(max_batch=64)
    actor.mailbox.deliver([token(i) for i in range(8)])
    await settle()
    assert [sizes(w) for w in workers] == [[4], [4]]  # not 2 x 2 per instance


def spill_actor(
    own: int = 1, spill: int = 2, *, max_batch: int = 8, spill_max: int = 2
) -> tuple[Actor, list[ManualWorker], list[ManualWorker]]:
    clock = FakeClock()
    actor = Actor(
        "n",
        BatchPolicy(max_batch),
        Mailbox("n", 1000, clock),
        clock,
        route,
        spill_policy=BatchPolicy(spill_max),
    )
    own_workers = [ManualWorker() for _ in range(own)]
    spill_workers = [ManualWorker() for _ in range(spill)]
    actor.attach(own_workers, spill_workers)
    return actor, own_workers, spill_workers


async def test_the_spill_pool_idles_while_an_instance_of_the_node_is_free() -> None:
    actor, [own], spill = spill_actor()
    actor.mailbox.deliver([token(i) for i in range(5)])
    await settle()
    assert sizes(own) == [5]  # the node's own instance takes all: it has room for 8
    assert [sizes(w) for w in spill] == [[], []]
    assert actor.statistics().spilled == 0


async def test_the_spill_pool_takes_its_own_batch_size_while_the_node_is_busy() -> None:
    actor, [own], spill = spill_actor()
    actor.mailbox.deliver([token(0)])
    await settle()
    actor.mailbox.deliver([token(i) for i in range(1, 12)])
    await settle()
    # own is busy: the 11 queued are shared over the idle spill instances, 2 at most each
    assert sizes(own) == [1]
    assert [sizes(w) for w in spill] == [[2], [2]]
    assert len(actor.mailbox) == 7
    own.finish(actor)
    await settle()
    assert sizes(own) == [1, 7]  # the freed instance of the node takes the rest, FIFO
    assert [t.payload["data"] for t in own.batches[1]] == list(range(5, 12))
    spill[0].finish(actor, lambda x: -x)
    await settle()
    assert sizes(spill[0]) == [2]  # nothing left to spill
    stats = actor.statistics()
    assert (stats.instances, stats.spill_instances) == (3, 2)
    assert (stats.dispatched, stats.spilled) == (12, 4)
    assert stats.batch_sizes[7] == 1
    assert stats.batch_sizes[2] == 2


async def test_spilled_results_are_routed_like_the_nodes_own() -> None:
    actor, [own], [spill] = spill_actor(spill=1, max_batch=1, spill_max=1)
    jobs = []
    for i in range(2):
        t = token(i)
        jobs.append(t.job)
        actor.mailbox.put_nowait(t)
        await settle()
    spill.finish(actor, lambda x: f"spill {x}")
    own.finish(actor, lambda x: f"own {x}")
    await settle()
    assert [job.future.result() for job in jobs] == ["own 0", "spill 1"]


async def test_a_spill_pool_needs_a_spill_policy() -> None:
    clock = FakeClock()
    actor = Actor("n", BatchPolicy(2), Mailbox("n", 10, clock), clock, route)
    with pytest.raises(ValueError, match="no spill_policy"):
        actor.attach([ManualWorker()], [ManualWorker()])
