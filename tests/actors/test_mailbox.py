from __future__ import annotations

import asyncio

import pytest
from tests.helpers import settle, token

from torchweir.actors.clock import FakeClock
from torchweir.actors.mailbox import Mailbox
from torchweir.actors.policy import BatchPolicy
from torchweir.errors import Overloaded, RuntimeClosed

pytestmark = pytest.mark.asyncio

TAKE_ONE = BatchPolicy(max_batch=1)


async def test_put_nowait_stamps_arrival_and_reports_it() -> None:
    clock = FakeClock(start=5.0)
    box = Mailbox("n", capacity=4, clock=clock)
    counts: list[int] = []
    box.on_arrival = counts.append
    t = token(1)
    box.put_nowait(t)
    assert t.arrived == 5.0
    assert counts == [1]
    assert len(box) == 1


async def test_put_nowait_on_a_full_mailbox_raises_overloaded_and_keeps_nothing() -> None:
    box = Mailbox("decode", capacity=2, clock=FakeClock())
    box.put_nowait(token(1))
    box.put_nowait(token(2))
    with pytest.raises(Overloaded, match=r"node 'decode': mailbox full \(2 requests queued\)"):
        box.put_nowait(token(3))
    assert [t.payload["data"] for t in box.queue] == [1, 2]


async def test_put_waits_for_room_and_then_enters_in_order() -> None:
    box = Mailbox("n", capacity=1, clock=FakeClock())
    box.put_nowait(token("a"))
    waiting = [asyncio.ensure_future(box.put(token(x))) for x in "bc"]
    await settle()
    assert not any(w.done() for w in waiting)
    assert box.has_waiters()
    order = []
    for _ in range(3):
        batch = box.take(TAKE_ONE, now=0.0, upstream=0)
        assert batch is not None
        order.append(batch[0].payload["data"])
        await settle()
    assert order == ["a", "b", "c"]
    assert all(w.done() for w in waiting)
    assert not box.has_waiters()


async def test_a_cancelled_putter_leaves_the_line_without_losing_the_next_turn() -> None:
    box = Mailbox("n", capacity=1, clock=FakeClock())
    box.put_nowait(token("a"))
    first = asyncio.ensure_future(box.put(token("b")))
    second = asyncio.ensure_future(box.put(token("c")))
    await settle()
    box.take(TAKE_ONE, now=0.0, upstream=0)  # wakes `first`...
    first.cancel()  # ...which is cancelled before it runs: its turn must pass on
    await settle()
    assert first.cancelled()
    assert second.done()
    assert [t.payload["data"] for t in box.queue] == ["c"]


async def test_newcomers_queue_behind_waiting_putters() -> None:
    box = Mailbox("n", capacity=1, clock=FakeClock())
    box.put_nowait(token("a"))
    early = asyncio.ensure_future(box.put(token("b")))
    await settle()
    box.take(TAKE_ONE, now=0.0, upstream=0)
    late = asyncio.ensure_future(box.put(token("c")))
    await settle()
    assert early.done()
    assert not late.done()
    assert [t.payload["data"] for t in box.queue] == ["b"]
    late.cancel()
    await settle()


async def test_deliver_ignores_capacity_so_admitted_requests_are_never_lost() -> None:
    box = Mailbox("n", capacity=1, clock=FakeClock(start=2.0))
    tokens = [token(i) for i in range(3)]
    box.deliver(tokens)
    assert len(box) == 3
    assert box.full()
    assert all(t.arrived == 2.0 for t in tokens)


async def test_close_fails_waiting_and_future_putters() -> None:
    box = Mailbox("n", capacity=1, clock=FakeClock())
    box.put_nowait(token("a"))
    waiting = asyncio.ensure_future(box.put(token("b")))
    await settle()
    box.close(RuntimeClosed("closing"))
    with pytest.raises(RuntimeClosed, match="closing"):
        await waiting
    with pytest.raises(RuntimeClosed):
        box.put_nowait(token("c"))
    with pytest.raises(RuntimeClosed):
        await box.put(token("d"))


@pytest.mark.parametrize("capacity", [0, -1, 1.5, True])
async def test_rejects_bad_capacity(capacity: object) -> None:
    with pytest.raises(ValueError, match="node 'n': max_queue must be an int >= 1"):
        Mailbox("n", capacity=capacity, clock=FakeClock())  # type: ignore[arg-type]
