from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from torchweir.actors.policy import BatchPolicy


@dataclass
class Item:
    id: int
    arrived: float


def queue_of(*arrivals: float) -> deque[Item]:
    return deque(Item(i, t) for i, t in enumerate(arrivals))


def test_full_batch_goes_at_once_even_with_upstream_in_flight() -> None:
    policy = BatchPolicy(max_batch=3, timeout=1.0)
    queue = queue_of(0.0, 0.0, 0.0, 0.0)
    batch = policy.take(queue, now=0.0, upstream=5)
    assert batch is not None
    assert [i.id for i in batch] == [0, 1, 2]
    assert [i.id for i in queue] == [3]


def test_waits_while_upstream_could_still_join() -> None:
    policy = BatchPolicy(max_batch=4, timeout=0.010)
    queue = queue_of(1.000)
    assert policy.take(queue, now=1.005, upstream=2) is None
    assert policy.deadline(queue) == pytest.approx(1.010)
    assert len(queue) == 1


def test_deadline_of_the_oldest_item_releases_a_partial_batch() -> None:
    policy = BatchPolicy(max_batch=4, timeout=0.010)
    queue = queue_of(1.000, 1.008)
    batch = policy.take(queue, now=1.010, upstream=2)
    assert batch is not None
    assert [i.id for i in batch] == [0, 1]


def test_no_wait_when_nothing_upstream_could_join() -> None:
    policy = BatchPolicy(max_batch=8, timeout=10.0)
    queue = queue_of(0.0, 0.0)
    batch = policy.take(queue, now=0.0, upstream=0)
    assert batch is not None
    assert len(batch) == 2


def test_share_spreads_a_queue_over_idle_instances() -> None:
    policy = BatchPolicy(max_batch=64, timeout=0.0)
    queue = queue_of(*[0.0] * 10)
    sizes = []
    for idle in (4, 3, 2, 1):
        batch = policy.take(queue, now=0.0, share=idle)
        assert batch is not None
        sizes.append(len(batch))
    assert sizes == [3, 3, 2, 2]


def test_empty_queue_has_no_batch_and_no_deadline() -> None:
    policy = BatchPolicy(max_batch=2, timeout=1.0)
    assert policy.take(deque(), now=0.0) is None
    assert policy.deadline(deque()) is None


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"max_batch": 0}, ValueError, "max_batch must be >= 1, got 0"),
        ({"max_batch": 2.5}, TypeError, "max_batch must be an int, got 2.5"),
        ({"max_batch": True}, TypeError, "got True"),
        ({"timeout": -1.0}, ValueError, "timeout must be >= 0 seconds, got -1.0"),
        ({"timeout": float("nan")}, ValueError, "got nan"),
    ],
)
def test_rejects_bad_settings(kwargs: dict[str, object], error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        BatchPolicy(**kwargs)  # type: ignore[arg-type]


# -- properties: every item once, FIFO, size <= max, nothing early unless full ----------

events = st.lists(
    st.one_of(
        st.tuples(st.just("arrive"), st.integers(1, 5)),
        st.tuples(st.just("tick"), st.floats(0.0, 0.02)),
        st.tuples(st.just("take"), st.integers(0, 3), st.integers(1, 4)),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(
    max_batch=st.integers(1, 8),
    timeout=st.sampled_from([0.0, 0.001, 0.005, 0.010]),
    script=events,
)
def test_policy_properties(max_batch: int, timeout: float, script: list[tuple]) -> None:
    policy = BatchPolicy(max_batch=max_batch, timeout=timeout)
    queue: deque[Item] = deque()
    now = 0.0
    next_id = 0
    taken: list[int] = []
    for event in script:
        if event[0] == "arrive":
            for _ in range(event[1]):
                queue.append(Item(next_id, now))
                next_id += 1
        elif event[0] == "tick":
            now += event[1]
        else:
            _, upstream, share = event
            before = list(queue)
            batch = policy.take(queue, now=now, upstream=upstream, share=share)
            if batch is None:
                assert queue == deque(before), "a refused take must not touch the queue"
                assert before == [] or (
                    len(before) < max_batch and upstream > 0 and now < before[0].arrived + timeout
                ), "waited although full, nothing upstream, or the deadline had come"
                continue
            assert 1 <= len(batch) <= max_batch
            assert batch == before[: len(batch)], "batches are cut from the front (FIFO)"
            if len(batch) < max_batch and len(before) >= max_batch:
                assert share > 1, "only sharing over idle instances may shrink a full batch"
            full = len(before) >= max_batch
            assert full or upstream == 0 or now >= before[0].arrived + timeout, (
                "dispatched before its deadline while not full and upstream could join"
            )
            taken.extend(item.id for item in batch)
    # drain: with nothing upstream everything left goes, in order
    while (batch := policy.take(queue, now=now, upstream=0)) is not None:
        taken.extend(item.id for item in batch)
    assert taken == list(range(next_id)), "each item exactly once, in arrival order"
