from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from tests.helpers import token

from torchweir.actors.request import Token
from torchweir.actors.worker import Errors, InstanceWorker
from torchweir.errors import InputError, KernelError
from torchweir.kernels.base import InstanceContext, Kernel, Outcome

pytestmark = pytest.mark.asyncio


class ThreadProbe(Kernel):
    """Records the thread of setup and of every forward; result = data * 2."""

    def __init__(self) -> None:
        self.setup_threads: list[int] = []
        self.forward_threads: list[int] = []

    def setup(self, ctx: InstanceContext) -> Kernel:
        self.setup_threads.append(threading.get_ident())
        return self

    def forward(self, items: list[dict[str, Any]]) -> Outcome:
        self.forward_threads.append(threading.get_ident())
        for item in items:
            item["result"] = item["data"] * 2
        return None


class Collector:
    """The on_done callback: records each call and wakes the test."""

    def __init__(self) -> None:
        self.calls: list[tuple[InstanceWorker, list[Token], Errors, int]] = []
        self.event = asyncio.Event()

    def __call__(self, worker: InstanceWorker, batch: list[Token], errors: Errors) -> None:
        self.calls.append((worker, batch, errors, threading.get_ident()))
        self.event.set()

    async def wait_for(self, count: int) -> None:
        while len(self.calls) < count:
            self.event.clear()
            await self.event.wait()


@contextlib.asynccontextmanager
async def started(kernel: Kernel, on_done: Collector, **ctx: Any) -> Any:
    worker = InstanceWorker(kernel, InstanceContext(node="n", **ctx), on_done)
    await worker.start()
    try:
        yield worker
    finally:
        worker.stop()
        assert await asyncio.to_thread(worker.join, 10.0)


async def test_setup_and_batches_run_on_the_instance_thread_and_return_on_the_loop() -> None:
    kernel, done = ThreadProbe(), Collector()
    async with started(kernel, done) as worker:
        batch = [token(1), token(2), token(3)]
        worker.run(batch)
        await done.wait_for(1)
    [(_, returned, errors, callback_thread)] = done.calls
    assert returned is batch
    assert errors is None
    assert [t.payload["result"] for t in batch] == [2, 4, 6]
    assert callback_thread == threading.get_ident()  # one call_soon_threadsafe, to the loop
    assert kernel.setup_threads == kernel.forward_threads
    assert kernel.setup_threads[0] != threading.get_ident()


async def test_each_instance_owns_a_distinct_thread() -> None:
    kernel, done = ThreadProbe(), Collector()
    async with started(kernel, done, index=0) as w0, started(kernel, done, index=1) as w1:
        w0.run([token(1)])
        w1.run([token(2)])
        await done.wait_for(2)
    assert len(set(kernel.setup_threads)) == 2
    assert set(kernel.forward_threads) == set(kernel.setup_threads)


async def test_binding_hook_binds_the_thread_and_completes_before_results_return() -> None:
    log: list[tuple[str, int]] = []

    class Binding:
        def enter(self, ctx: InstanceContext) -> InstanceContext:
            log.append(("enter", threading.get_ident()))
            return InstanceContext(ctx.node, ctx.index, ctx.instance_num, "cuda:7", "stream")

        @contextlib.contextmanager
        def batch_scope(self, ctx: InstanceContext) -> Iterator[None]:
            log.append((f"scope {ctx.device} {ctx.stream}", threading.get_ident()))
            yield

        def complete(self, ctx: InstanceContext) -> None:
            log.append(("complete", threading.get_ident()))

    seen: list[InstanceContext] = []

    class CtxKernel(ThreadProbe):
        def setup(self, ctx: InstanceContext) -> Kernel:
            seen.append(ctx)
            return self

    done = Collector()
    worker = InstanceWorker(CtxKernel(), InstanceContext("n"), done, binding=Binding())
    await worker.start()
    worker.run([token(1)])
    await done.wait_for(1)
    worker.stop()
    await asyncio.to_thread(worker.join, 10.0)
    assert [event for event, _ in log] == ["enter", "scope cuda:7 stream", "complete"]
    assert len({thread for _, thread in log}) == 1
    assert seen[0].device == "cuda:7"


async def test_setup_failure_is_raised_by_start() -> None:
    class Broken(Kernel):
        def setup(self, ctx: InstanceContext) -> Kernel:
            raise FileNotFoundError("model.onnx")

    worker = InstanceWorker(Broken(), InstanceContext("n"), Collector())
    with pytest.raises(FileNotFoundError, match=r"model\.onnx"):
        await worker.start()
    assert worker.join(1.0)


async def test_item_errors_are_wrapped_per_item_with_node_and_cause() -> None:
    shared = ValueError("odd")

    class Picky(Kernel):
        def forward(self, items: list[dict[str, Any]]) -> Outcome:
            errors: list[BaseException | None] = []
            for item in items:
                if item["data"] == "bad-input":
                    errors.append(InputError("truncated JPEG"))
                elif item["data"] % 2:
                    errors.append(shared)  # one instance reused: each request still gets its own
                else:
                    item["result"] = item["data"]
                    errors.append(None)
            return errors

    done = Collector()
    async with started(Picky(), done) as worker:
        worker.run([token(1), token(2), token(3), token("bad-input")])
        await done.wait_for(1)
    errors = done.calls[0][2]
    assert errors is not None
    first, ok, third, bad = errors
    assert ok is None
    assert isinstance(first, KernelError)
    assert isinstance(third, KernelError)
    assert first is not third
    assert first.node == "n"
    assert first.__cause__ is shared
    assert str(first) == "node 'n': ValueError: odd"
    assert isinstance(bad, InputError)
    assert bad.node == "n"
    assert str(bad) == "node 'n': truncated JPEG"


async def test_a_raising_kernel_fails_its_batch_with_one_error_each_and_keeps_running() -> None:
    class Flaky(Kernel):
        calls = 0

        def forward(self, items: list[dict[str, Any]]) -> Outcome:
            Flaky.calls += 1
            if Flaky.calls == 1:
                raise RuntimeError("CUDA out of memory")
            for item in items:
                item["result"] = item["data"]
            return None

    done = Collector()
    async with started(Flaky(), done) as worker:
        worker.run([token(1), token(2)])
        worker.run([token(3)])
        await done.wait_for(2)
    first_errors, second_errors = done.calls[0][2], done.calls[1][2]
    assert first_errors is not None
    assert second_errors is None
    a, b = first_errors
    assert a is not b
    assert isinstance(a, KernelError)
    assert isinstance(b, KernelError)
    assert str(a) == "node 'n': batch of 2 failed: RuntimeError: CUDA out of memory"
    assert a.__cause__ is b.__cause__
    assert isinstance(a.__cause__, RuntimeError)


async def test_a_wrong_number_of_outcomes_fails_the_batch() -> None:
    class Short(Kernel):
        def forward(self, items: list[dict[str, Any]]) -> Outcome:
            return [None]

    done = Collector()
    async with started(Short(), done) as worker:
        worker.run([token(1), token(2)])
        await done.wait_for(1)
    errors = done.calls[0][2]
    assert errors is not None
    assert all(isinstance(e, KernelError) for e in errors)
    assert "returned 1 outcomes for a batch of 2" in str(errors[0])


class Closing(Kernel):
    """Its set-up instance records the thread that closes it."""

    def __init__(self) -> None:
        self.closed_in: list[int] = []
        self.ran_in: list[int] = []

    def forward(self, items: list[dict[str, Any]]) -> Outcome:
        self.ran_in.append(threading.get_ident())
        for item in items:
            item["result"] = item["data"]
        return None

    def close(self) -> None:
        self.closed_in.append(threading.get_ident())


async def test_the_set_up_kernel_is_closed_once_in_its_thread_when_the_runtime_stops() -> None:
    import torchweir as tw

    kernel = Closing()
    g = tw.Graph()
    g.node("n", tw.kernels.Sequential([("", kernel)]), instance_num=1)
    async with tw.Runtime(g) as rt:
        assert await rt.submit(7) == 7
        assert kernel.closed_in == []
    assert kernel.closed_in == kernel.ran_in  # once, in the instance's thread
