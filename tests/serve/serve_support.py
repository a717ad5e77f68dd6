"""Helpers for the serve tests: a real server on an ephemeral loopback port, kernels that
hold batches until told, and a slow kernel that TOML configs load as
``tests.serve.serve_support:Slow`` in a server subprocess."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

from aiohttp import web

import torchweir as tw
from torchweir.kernels.base import Outcome, Payload
from torchweir.runtime.loop import new_event_loop

DECODE_BACKEND = "S[DecodeMat,ResizeMat,cvtColorMat,Mat2Tensor]"


@contextlib.asynccontextmanager
async def serving(app: web.Application, backlog: int = 128) -> AsyncIterator[str]:
    """Serve ``app`` on 127.0.0.1 at a free port; yield its base URL."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=backlog)
        await site.start()
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


async def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll ``condition`` on the loop until it holds (for state in other threads)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(0.005)


class Gate:
    """A kernel that holds each batch until :meth:`release`; ``entered`` counts batches."""

    def __init__(self) -> None:
        self._open = threading.Event()
        self.entered = 0

    def release(self) -> None:
        self._open.set()

    def kernel(self) -> Any:
        @tw.kernel(max=1)
        def gated(batch: list[Any]) -> list[Any]:
            self.entered += 1
            self._open.wait(10)
            return batch

        return gated


@tw.kernel(max=8)
def divide(batch: list[Any]) -> list[Any]:
    """``1 / x``: zero fails its own request with a ZeroDivisionError."""
    out: list[Any] = []
    for x in batch:
        try:
            out.append(1 / x)
        except ZeroDivisionError as exc:
            out.append(exc)
    return out


class Slow(tw.Kernel):
    """Sleeps ``delay`` seconds per batch, returns ``data``, and logs each item's data
    (text) as one line to ``log``: what reached a kernel, for the SIGTERM test."""

    def __init__(self, delay: float = 0.1, log: str = "", max_batch: int = 8) -> None:
        self.delay = delay
        self.log = Path(log) if log else None
        self.max_batch = max_batch

    def forward(self, items: list[Payload]) -> Outcome:
        time.sleep(self.delay)
        for item in items:
            item["result"] = item["data"]
        if self.log is not None:
            with self.log.open("a") as f:
                f.writelines(f"{bytes(item['data']).decode()}\n" for item in items)
        return None


@contextlib.contextmanager
def server_thread(make: Callable[[], web.Application]) -> Iterator[str]:
    """Serve ``make()`` from a loop of its own in a thread, for synchronous tests (the
    benchmark harness runs its own loop). Yields the base URL."""
    loop = new_event_loop()
    started: asyncio.Future[str] = loop.create_future()
    stop = asyncio.Event()

    async def main() -> None:
        try:
            async with serving(make()) as url:
                started.set_result(url)
                await stop.wait()
        except BaseException as exc:
            if not started.done():
                started.set_exception(exc)
            raise

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    try:
        yield asyncio.run_coroutine_threadsafe(_wait(started), loop).result(30)
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(30)
        loop.close()


async def _wait(future: asyncio.Future[str]) -> str:
    return await future


class BrokenSetup(tw.Kernel):
    """A kernel whose every instance fails to set up (for start-up errors)."""

    def setup(self, ctx: tw.InstanceContext) -> tw.Kernel:
        raise OSError("no such model file: /missing/model.onnx")
