"""What a benchmark drives: a torchweir runtime, or a baseline, behind one small protocol.

A call is one request of K items, and it returns one outcome per item with failures as
exception *values*. That way a target that fails one item of K (``submit_many``) and one
that fails a whole call report the same way, and the load generator counts errors by type
without ever confusing them with latencies.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from torchweir.graphs.builder import Graph
from torchweir.graphs.spec import GraphSpec
from torchweir.runtime.runtime import Runtime, RuntimeStatistics

__all__ = ["RuntimeTarget", "Target", "ThreadTarget"]


@runtime_checkable
class Target(Protocol):
    """A system under test. ``open`` and ``close`` run on the benchmark's event loop."""

    name: str

    async def open(self) -> None:
        """Load models, start threads: everything that must not count as latency."""

    async def call(self, items: list[Any]) -> list[Any]:
        """Run one request of ``len(items)`` items; one outcome (or exception) per item."""

    async def close(self) -> None:
        """Release what :meth:`open` took; called once per :meth:`open`, even on errors."""


class RuntimeTarget:
    """A :class:`~torchweir.Runtime` in this process; a fresh one per :meth:`open`.

    Args:
        graph: a Graph, a GraphSpec or the path of a TOML file. It is loaded and validated
            here, so a bad config fails before any benchmark starts.
        name: the label in reports.
        timeout: seconds each request may take (``submit(timeout=...)``); a slower one
            counts as a ``DeadlineExceeded`` error instead of a latency.
        runtime_kwargs: passed to :class:`~torchweir.Runtime` (``overflow``, ...).

    Raises:
        ConfigError: the graph or a runtime argument is invalid.
    """

    def __init__(
        self,
        graph: Graph | GraphSpec | str | Path,
        *,
        name: str = "torchweir",
        timeout: float | None = None,
        **runtime_kwargs: Any,
    ) -> None:
        self.name = name
        self.timeout = timeout
        self._kwargs = runtime_kwargs
        self.graph: GraphSpec = Runtime(graph, **runtime_kwargs).graph
        self._runtime: Runtime | None = None
        #: The runtime's statistics when it last closed (batch sizes per node, ...).
        self.last_statistics: RuntimeStatistics | None = None

    def __repr__(self) -> str:
        return f"RuntimeTarget({self.name!r}, nodes={list(self.graph.names)})"

    @property
    def runtime(self) -> Runtime:
        """The running runtime, to read its ``statistics()`` during a benchmark."""
        if self._runtime is None:
            raise RuntimeError(f"{self!r} is not open")
        return self._runtime

    async def open(self) -> None:
        runtime = Runtime(self.graph, **self._kwargs)
        await runtime.start()
        self._runtime = runtime

    async def call(self, items: list[Any]) -> list[Any]:
        runtime = self.runtime
        if len(items) != 1:
            return await runtime.submit_many(items, timeout=self.timeout, return_exceptions=True)
        try:
            return [await runtime.submit(items[0], timeout=self.timeout)]
        except Exception as exc:
            return [exc]

    async def close(self) -> None:
        runtime, self._runtime = self._runtime, None
        if runtime is not None:
            self.last_statistics = runtime.statistics()
            await runtime.aclose()


class ThreadTarget:
    """The naive service: each call runs ``fn(item)`` for its items in a worker thread.

    The pool starts a thread only when every thread is busy, so a closed loop of N clients
    runs on exactly N threads: the thread-per-request server that torchweir replaces.
    Any locking (a model shared between threads) is ``fn``'s business.

    Args:
        fn: the per-item function; an exception it raises fails only that item.
        name: the label in reports.
        threads: an upper bound on the pool; ``None`` for one thread per concurrent call.
    """

    def __init__(
        self, fn: Callable[[Any], Any], name: str = "naive", threads: int | None = None
    ) -> None:
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads!r}")
        self.name = name
        self._fn = fn
        self._threads = threads
        self._pool: _Pool | None = None

    def __repr__(self) -> str:
        return f"ThreadTarget({self.name!r}, threads={self._threads})"

    @property
    def thread_count(self) -> int:
        """Threads started since :meth:`open`."""
        return self._pool.started if self._pool is not None else 0

    async def open(self) -> None:
        self._pool = _Pool(self._threads or 4096, f"bench-{self.name}")

    async def call(self, items: list[Any]) -> list[Any]:
        if self._pool is None:
            raise RuntimeError(f"{self!r} is not open")
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._pool.submit(lambda: self._run(items), future)
        return await future

    def _run(self, items: list[Any]) -> list[Any]:
        outcomes: list[Any] = []
        for item in items:
            try:
                outcomes.append(self._fn(item))
            except Exception as exc:
                outcomes.append(exc)
        return outcomes

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:  # waits for calls still running (their clients were cancelled)
            await asyncio.to_thread(pool.shutdown)


Job = tuple[Callable[[], Any], "asyncio.Future[Any]"]


class _Pool:
    """Threads that grow on demand and never exceed the number of concurrent jobs.

    ``ThreadPoolExecutor`` marks a worker idle only after the job's result is delivered,
    so a client that resubmits at once often finds no idle worker and gets a new thread.
    Here a worker counts itself idle *before* it delivers the result.
    """

    def __init__(self, limit: int, prefix: str) -> None:
        self._limit = limit
        self._prefix = prefix
        self._jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0
        self._threads: list[threading.Thread] = []

    @property
    def started(self) -> int:
        return len(self._threads)

    def submit(self, fn: Callable[[], Any], future: asyncio.Future[Any]) -> None:
        with self._lock:
            if self._idle:
                self._idle -= 1
            elif len(self._threads) < self._limit:
                name = f"{self._prefix}-{len(self._threads)}"
                thread = threading.Thread(target=self._work, name=name, daemon=True)
                self._threads.append(thread)
                thread.start()
        self._jobs.put((fn, future))

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            fn, future = job
            try:
                outcome, failed = fn(), False
            except BaseException as exc:  # delivered to the caller, like an executor does
                outcome, failed = exc, True
            with self._lock:
                self._idle += 1
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits for it
                future.get_loop().call_soon_threadsafe(_settle, future, outcome, failed)

    def shutdown(self) -> None:
        """Cancel the jobs not started, let running ones finish, join every thread."""
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                with contextlib.suppress(RuntimeError):
                    job[1].get_loop().call_soon_threadsafe(job[1].cancel)
        for _ in self._threads:
            self._jobs.put(None)
        for thread in self._threads:
            thread.join()


def _settle(future: asyncio.Future[Any], outcome: Any, failed: bool) -> None:
    if future.done():  # the caller was cancelled
        return
    if failed:
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
