"""Test doubles: a hand-driven worker, a recording kernel, and a loop-settling helper."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import torchweir as tw
from torchweir.actors.request import Job, Token


async def settle(rounds: int = 10) -> None:
    """Let every callback already scheduled on the loop run (no wall-clock waiting)."""
    for _ in range(rounds):
        await asyncio.sleep(0)


def token(value: Any, arrived: float = 0.0) -> Token:
    """A token for a fresh job, with ``data = value``."""
    job = Job(asyncio.get_running_loop().create_future(), None)
    return Token(job, {"data": value}, arrived)


class ManualWorker:
    """An instance that holds each batch until the test completes it."""

    def __init__(self) -> None:
        self.batches: list[list[Token]] = []
        self.current: list[Token] | None = None

    def run(self, batch: list[Token]) -> None:
        assert self.current is None, "an actor gave a busy instance a second batch"
        self.current = batch
        self.batches.append(batch)

    def finish(self, actor: Any, result: Callable[[Any], Any] = lambda x: x) -> list[Token]:
        """Complete the held batch with ``result(data)`` for each item."""
        batch, self.current = self.current, None
        assert batch is not None
        for t in batch:
            t.payload["result"] = result(t.payload["data"])
        actor.batch_done(self, batch, None)
        return batch


class Recorder:
    """A thread-safe log of every batch a kernel saw."""

    def __init__(self) -> None:
        self.batches: list[list[Any]] = []
        self._lock = threading.Lock()

    def add(self, batch: list[Any]) -> None:
        with self._lock:
            self.batches.append(list(batch))

    @property
    def items(self) -> list[Any]:
        with self._lock:
            return [x for b in self.batches for x in b]

    @property
    def sizes(self) -> list[int]:
        with self._lock:
            return [len(b) for b in self.batches]


def recording_kernel(
    recorder: Recorder, fn: Callable[[Any], Any] = lambda x: x, max: int = 1
) -> tw.kernels.FunctionKernel:
    """A ``@tw.kernel`` that logs each batch, then maps ``fn`` over it."""

    def run(batch: list[Any]) -> list[Any]:
        recorder.add(batch)
        out = []
        for x in batch:
            try:
                out.append(fn(x))
            except Exception as exc:
                out.append(exc)
        return out

    return tw.kernel(run, max=max)


def slot_files(pid: int) -> list[str]:
    """The shared-memory slot files of process ``pid`` (torchweir.actors.shm)."""
    import glob
    import os

    from torchweir.actors import shm

    return [p for f in shm._folders() for p in glob.glob(os.path.join(f, f"torchweir-{pid}-*"))]
