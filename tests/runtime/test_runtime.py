from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from tests.helpers import Recorder, recording_kernel, settle

import torchweir as tw
from torchweir.actors.clock import FakeClock

pytestmark = pytest.mark.asyncio


class Gate:
    """A kernel that blocks its instance thread until the test opens the gate."""

    def __init__(self, max: int = 1) -> None:
        self.entered = threading.Event()
        self.opened = threading.Event()
        self.seen = Recorder()

        def run(batch: list[Any]) -> list[Any]:
            self.seen.add(batch)
            self.entered.set()
            assert self.opened.wait(10), "gate never opened"
            return batch

        self.kernel = tw.kernel(run, max=max)

    async def wait_entered(self) -> None:
        assert await asyncio.to_thread(self.entered.wait, 10)

    def open(self) -> None:
        self.opened.set()


def single(kernel: tw.Kernel, **params: Any) -> tw.Graph:
    g = tw.Graph()
    g.node("only", kernel, **params)
    return g


def chain(*kernels: tw.Kernel) -> tw.Graph:
    g = tw.Graph()
    prev = None
    for i, k in enumerate(kernels):
        ref = g.node(f"n{i}", k)
        if prev is not None:
            prev >> ref
        prev = ref
    return g


@tw.kernel(max=64)
def plus_one(batch: list[int]) -> list[int]:
    return [x + 1 for x in batch]


# -- lifecycle -------------------------------------------------------------------------


async def test_lifecycle_states_and_idempotent_close() -> None:
    rt = tw.Runtime(single(plus_one))
    assert rt.state is tw.RuntimeState.UNSTARTED
    with pytest.raises(tw.RuntimeClosed, match="the runtime is unstarted"):
        await rt.submit(1)
    async with rt:
        assert rt.state is tw.RuntimeState.RUNNING
        assert await rt.submit(1) == 2
        with pytest.raises(tw.RuntimeClosed, match="cannot start a runtime that is running"):
            await rt.start()
    assert rt.state is tw.RuntimeState.CLOSED
    await rt.aclose()
    await asyncio.gather(rt.aclose(), rt.aclose())
    with pytest.raises(tw.RuntimeClosed, match="the runtime is closed"):
        await rt.submit(1)


async def test_closing_an_unstarted_runtime_closes_it() -> None:
    rt = tw.Runtime(single(plus_one))
    await rt.aclose()
    assert rt.state is tw.RuntimeState.CLOSED
    with pytest.raises(tw.RuntimeClosed):
        await rt.start()


async def test_a_kernel_setup_failure_fails_start_with_the_node_named() -> None:
    class NoModel(tw.Kernel):
        def setup(self, ctx: tw.InstanceContext) -> tw.Kernel:
            raise FileNotFoundError("resnet50.onnx")

    rt = tw.Runtime(single(NoModel(), instance_num=2))
    with pytest.raises(tw.ConfigError, match=r"node 'only': .*FileNotFoundError: resnet50\.onnx"):
        await rt.start()
    assert rt.state is tw.RuntimeState.CLOSED


# -- submit ----------------------------------------------------------------------------


async def test_bare_values_return_the_result_and_dicts_return_the_dict() -> None:
    async with tw.Runtime(chain(plus_one, plus_one)) as rt:
        assert await rt.submit(1) == 3
        request = {"data": 10, "tag": "x"}
        returned = await rt.submit(request)
        assert returned is request
        assert request == {"data": 10, "tag": "x", "result": 12}


async def test_submit_many_keeps_order_and_can_return_exceptions() -> None:
    @tw.kernel(max=8)
    def reciprocal(batch: list[int]) -> list[Any]:
        return [ZeroDivisionError("zero") if x == 0 else 1 / x for x in batch]

    async with tw.Runtime(single(reciprocal)) as rt:
        assert await rt.submit_many([1, 2, 4]) == [1.0, 0.5, 0.25]
        outcomes = await rt.submit_many([2, 0, 1], return_exceptions=True)
        assert outcomes[0] == 0.5
        assert outcomes[2] == 1.0
        assert isinstance(outcomes[1], tw.KernelError)
        with pytest.raises(tw.KernelError, match="ZeroDivisionError: zero"):
            await rt.submit_many([1, 0])
        assert await rt.submit_many([]) == []


async def test_node_name_enters_the_graph_there() -> None:
    @tw.kernel
    def tag(batch: list[str]) -> list[str]:
        return [x + "!" for x in batch]

    async with tw.Runtime(chain(tag, tag, tag)) as rt:
        assert await rt.submit("a") == "a!!!"
        assert await rt.submit("a", node_name="n1") == "a!!"
        assert (await rt.submit({"data": "a", "node_name": "n2"}))["result"] == "a!"
        with pytest.raises(tw.UnknownNode, match="no node 'n10' in the graph; did you mean 'n1'"):
            await rt.submit("a", node_name="n10")
        assert rt.statistics().pending == 0


async def test_a_graph_with_two_roots_enters_at_its_entry_unless_told() -> None:
    g = tw.Graph()
    g.node("left", plus_one)
    g.node("right", plus_one)
    with pytest.raises(tw.ConfigError, match=r"2 roots \('left', 'right'\) and no entry"):
        tw.Runtime(g)
    g.entry = "left"
    async with tw.Runtime(g) as rt:
        assert await rt.submit(1) == 2
        assert await rt.submit(1, node_name="right") == 2


async def test_bad_requests_fail_fast_with_clear_errors() -> None:
    async with tw.Runtime(single(plus_one)) as rt:
        with pytest.raises(ValueError, match=r"needs a 'data' key; got keys \['image'\]"):
            await rt.submit({"image": b""})
        with pytest.raises(ValueError, match="timeout must be > 0 seconds, got -1"):
            await rt.submit(1, timeout=-1)
        assert rt.statistics().pending == 0


# -- failures --------------------------------------------------------------------------


async def test_an_item_error_fails_only_that_request() -> None:
    seen = Recorder()

    def check(x: int) -> int:
        if x == 3:
            raise ValueError(f"bad item {x}")
        return x

    kernel = recording_kernel(seen, check, max=16)
    async with tw.Runtime(single(kernel)) as rt:
        outcomes = await rt.submit_many(range(6), return_exceptions=True)
    assert outcomes[:3] == [0, 1, 2]
    assert outcomes[4:] == [4, 5]
    error = outcomes[3]
    assert isinstance(error, tw.KernelError)
    assert error.node == "only"
    assert isinstance(error.__cause__, ValueError)
    assert str(error) == "node 'only': ValueError: bad item 3"


async def test_a_raising_kernel_fails_its_batch_only_and_the_node_keeps_running() -> None:
    calls = []

    @tw.kernel(max=4)
    def explode_once(batch: list[int]) -> list[int]:
        calls.append(list(batch))
        if len(calls) == 1:
            raise RuntimeError("boom")
        return batch

    async with tw.Runtime(single(explode_once)) as rt:
        first = await rt.submit_many([1, 2, 3], return_exceptions=True)
        assert all(isinstance(e, tw.KernelError) for e in first)
        assert len({id(e) for e in first}) == 3, "each request gets its own exception"
        assert all(isinstance(e.__cause__, RuntimeError) for e in first)
        assert await rt.submit_many([4, 5]) == [4, 5]


async def test_a_kernel_that_leaves_no_result_fails_the_request_with_the_node() -> None:
    class Forgetful(tw.Kernel):
        def forward(self, items: list[dict[str, Any]]) -> None:
            return None

    async with tw.Runtime(single(Forgetful())) as rt:
        with pytest.raises(tw.KernelError, match="node 'only': kernel left no 'result'"):
            await rt.submit(1)


# -- deadlines, cancellation -----------------------------------------------------------


async def test_an_expired_request_fails_and_never_reaches_the_kernel() -> None:
    clock = FakeClock()
    gate = Gate()
    async with tw.Runtime(single(gate.kernel, max=8), clock=clock) as rt:
        busy = asyncio.ensure_future(rt.submit("busy"))
        await gate.wait_entered()
        late = asyncio.ensure_future(rt.submit("late", timeout=1.0))
        await settle()
        clock.advance(1.0)
        with pytest.raises(tw.DeadlineExceeded, match="within its timeout of 1 s"):
            await late
        gate.open()
        assert await busy == "busy"
        assert await rt.submit("after") == "after"
    assert gate.seen.items == ["busy", "after"]
    assert isinstance(tw.DeadlineExceeded(1.0), TimeoutError)


async def test_a_cancelled_request_is_dropped_before_its_batch_runs() -> None:
    gate = Gate()
    async with tw.Runtime(single(gate.kernel, max=8)) as rt:
        busy = asyncio.ensure_future(rt.submit("busy"))
        await gate.wait_entered()
        cancelled = asyncio.ensure_future(rt.submit("cancelled"))
        kept = asyncio.ensure_future(rt.submit("kept"))
        await settle()
        cancelled.cancel()
        gate.open()
        assert await asyncio.gather(busy, kept) == ["busy", "kept"]
        assert cancelled.cancelled()
        [stats] = rt.statistics().nodes
        assert stats.dropped == 1
        assert rt.statistics().pending == 0
    assert gate.seen.items == ["busy", "kept"]


# -- backpressure ----------------------------------------------------------------------


async def test_reject_policy_raises_overloaded_and_loses_nothing() -> None:
    gate = Gate()
    async with tw.Runtime(single(gate.kernel, max_queue=2), overflow="reject") as rt:
        running = asyncio.ensure_future(rt.submit(0))
        await gate.wait_entered()
        queued = [asyncio.ensure_future(rt.submit(i)) for i in (1, 2)]
        await settle()
        with pytest.raises(tw.Overloaded, match=r"node 'only': mailbox full \(2 requests"):
            await rt.submit(3)
        gate.open()
        assert await asyncio.gather(running, *queued) == [0, 1, 2]
        assert rt.statistics().pending == 0
    assert sorted(gate.seen.items) == [0, 1, 2]


async def test_wait_policy_holds_callers_until_there_is_room() -> None:
    gate = Gate()
    async with tw.Runtime(single(gate.kernel, max_queue=2)) as rt:
        running = asyncio.ensure_future(rt.submit(0))
        await gate.wait_entered()
        callers = [asyncio.ensure_future(rt.submit(i)) for i in range(1, 6)]
        await settle()
        [stats] = rt.statistics().nodes
        assert stats.queued == 2  # three callers wait outside the full mailbox
        gate.open()
        assert await asyncio.gather(running, *callers) == [0, 1, 2, 3, 4, 5]


async def test_a_deadline_also_bounds_the_wait_for_room() -> None:
    clock = FakeClock()
    gate = Gate()
    async with tw.Runtime(single(gate.kernel, max_queue=1), clock=clock) as rt:
        running = asyncio.ensure_future(rt.submit(0))
        await gate.wait_entered()
        queued = asyncio.ensure_future(rt.submit(1))
        waiting = asyncio.ensure_future(rt.submit(2, timeout=0.5))
        await settle()
        clock.advance(0.5)
        with pytest.raises(tw.DeadlineExceeded):
            await waiting
        gate.open()
        assert await asyncio.gather(running, queued) == [0, 1]
    assert gate.seen.items == [0, 1]


# -- closing ---------------------------------------------------------------------------


async def test_close_drains_requests_in_flight() -> None:
    gate = Gate(max=8)
    rt = tw.Runtime(single(gate.kernel))
    await rt.start()
    callers = [asyncio.ensure_future(rt.submit(i)) for i in range(5)]
    await gate.wait_entered()
    closing = asyncio.ensure_future(rt.aclose())
    await settle()
    assert rt.state is tw.RuntimeState.CLOSING
    with pytest.raises(tw.RuntimeClosed, match="the runtime is closing"):
        await rt.submit(99)
    gate.open()
    await closing
    assert await asyncio.gather(*callers) == [0, 1, 2, 3, 4]
    assert rt.state is tw.RuntimeState.CLOSED


async def test_close_with_no_drain_time_fails_everything_pending_and_leaves_none_hanging() -> None:
    gate = Gate(max=1)
    rt = tw.Runtime(single(gate.kernel, max_queue=3), drain_timeout=0)
    await rt.start()
    callers = [asyncio.ensure_future(rt.submit(i)) for i in range(6)]  # 1 runs, 3 queue, 2 wait
    await gate.wait_entered()
    await settle()
    closing = asyncio.ensure_future(rt.aclose())
    outcomes = await asyncio.gather(*callers, return_exceptions=True)
    assert all(isinstance(o, tw.RuntimeClosed) for o in outcomes)
    gate.open()  # the running batch finishes after its caller was failed: dropped quietly
    await closing
    assert rt.statistics().pending == 0
    assert gate.seen.items == [0]


# -- batching and load -----------------------------------------------------------------


async def test_batching_is_real_under_concurrent_load() -> None:
    seen = Recorder()
    kernel = recording_kernel(seen, lambda x: x * 3, max=16)
    async with tw.Runtime(single(kernel)) as rt:
        results = await asyncio.gather(*(rt.submit(i) for i in range(2000)))
    assert results == [i * 3 for i in range(2000)]
    assert max(seen.sizes) > 1
    assert max(seen.sizes) <= 16
    assert sorted(seen.items) == list(range(2000))


async def test_ten_thousand_requests_each_get_exactly_one_outcome() -> None:
    import random

    rng = random.Random(1234)
    seen = Recorder()

    def work(x: int) -> int:
        if x % 7 == 3:
            raise ValueError(f"unlucky {x}")
        return x * 2

    g = tw.Graph()
    a = g.node("first", recording_kernel(seen, work, max=32), instance_num=2)
    b = g.node("second", recording_kernel(Recorder(), lambda y: y + 1, max=64), batching_timeout=1)
    a >> b

    async def caller(rt: tw.Runtime, i: int) -> Any:
        timeout = 1e-4 if i % 11 == 0 else None
        if i % 2:
            return await rt.submit(i, timeout=timeout)
        request = await rt.submit({"data": i}, timeout=timeout)
        return request["result"]

    async with tw.Runtime(g) as rt:
        tasks = [asyncio.ensure_future(caller(rt, i)) for i in range(10_000)]
        for i in rng.sample(range(10_000), 1500):
            if rng.random() < 0.5:
                await asyncio.sleep(0)
            tasks[i].cancel()
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        stats = rt.statistics()

    kinds = {"ok": 0, "kernel": 0, "deadline": 0, "cancelled": 0}
    for i, (task, outcome) in enumerate(zip(tasks, outcomes, strict=True)):
        if task.cancelled():
            kinds["cancelled"] += 1
        elif isinstance(outcome, tw.KernelError):
            assert i % 7 == 3
            assert outcome.node == "first"
            assert str(outcome) == f"node 'first': ValueError: unlucky {i}"
            kinds["kernel"] += 1
        elif isinstance(outcome, tw.DeadlineExceeded):
            assert i % 11 == 0
            kinds["deadline"] += 1
        else:
            assert outcome == i * 2 + 1, f"request {i} got {outcome!r}"
            kinds["ok"] += 1
    assert sum(kinds.values()) == 10_000
    assert kinds["cancelled"] > 0
    assert kinds["kernel"] > 0
    assert kinds["deadline"] > 0
    assert kinds["ok"] > 5000
    assert stats.pending == 0
    processed = seen.items
    assert len(processed) == len(set(processed)), "a request ran twice"
    for node in stats.nodes:
        assert node.queued == 0
        assert node.running == 0
        assert node.arrived == node.dispatched + node.dropped


async def test_runs_on_uvloop_too() -> None:
    pytest.importorskip("uvloop")
    result: list[Any] = []

    def in_thread() -> None:
        async def main() -> None:
            async with tw.Runtime(chain(plus_one, plus_one)) as rt:
                result.append(type(asyncio.get_running_loop()).__module__)
                result.append(await rt.submit_many(range(100)))

        tw.run(main())

    await asyncio.to_thread(in_thread)
    assert result[0].startswith("uvloop")
    assert result[1] == [x + 2 for x in range(100)]


async def test_prefetch_keeps_results_right_and_bad_values_are_config_errors() -> None:
    seen = Recorder()
    kernel = recording_kernel(seen, lambda x: x + 1, max=4)
    async with tw.Runtime(single(kernel, instance_num=2, prefetch=2)) as rt:
        assert await asyncio.gather(*(rt.submit(i) for i in range(500))) == [
            i + 1 for i in range(500)
        ]
    assert sorted(seen.items) == list(range(500))
    for bad in (-1, "x", True):
        with pytest.raises(tw.ConfigError, match=r"node 'only', key 'prefetch': expected an int"):
            await tw.Runtime(single(kernel, prefetch=bad)).start()


async def test_a_malformed_request_in_submit_many_is_only_its_own_outcome() -> None:
    async with tw.Runtime(single(plus_one)) as rt:
        outcomes = await rt.submit_many(
            [1, {"no": "data"}, {"data": 2, "node_name": "nope"}, 3], return_exceptions=True
        )
        assert outcomes[0] == 2
        assert outcomes[3] == 4
        assert isinstance(outcomes[1], ValueError)
        assert isinstance(outcomes[2], tw.UnknownNode)
        with pytest.raises(ValueError, match="needs a 'data' key"):
            await rt.submit_many([1, {"no": "data"}])
        assert rt.statistics().pending == 0


async def test_switch_interval_is_lowered_while_running_and_restored_after() -> None:
    import sys

    before = sys.getswitchinterval()
    async with tw.Runtime(single(plus_one), switch_interval=before / 10) as rt:
        assert sys.getswitchinterval() == pytest.approx(before / 10)
        async with tw.Runtime(single(plus_one), switch_interval=before / 5):
            assert sys.getswitchinterval() == pytest.approx(before / 10)  # never raised
        assert sys.getswitchinterval() == pytest.approx(before / 10)
        assert await rt.submit(1) == 2
    assert sys.getswitchinterval() == before
    with pytest.raises(ValueError, match="switch_interval must be > 0 seconds"):
        tw.Runtime(single(plus_one), switch_interval=0)


async def test_statistics_hold_timings_busy_time_and_errors_by_node() -> None:
    @tw.kernel(max=8)
    def picky(batch: list[int]) -> list[Any]:
        return [ValueError("odd") if x % 2 else x for x in batch]

    g = chain(plus_one, picky)
    async with tw.Runtime(g) as rt:
        await rt.submit_many(range(20), return_exceptions=True)
        with pytest.raises(tw.UnknownNode):
            await rt.submit(1, node_name="nope")
        stats = {s.node: s for s in rt.statistics().nodes}
    first, second = stats["n0"], stats["n1"]
    assert first.queue_wait_s.count == first.dispatched == 20
    assert first.run_time_s.count == first.batches
    assert first.busy_seconds > 0
    assert first.errors == {}
    assert second.errors == {"KernelError": 10}  # x + 1 is odd for every even x
