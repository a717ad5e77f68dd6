"""Instance threads: one dedicated thread per instance of a node.

The event loop hands a worker one batch at a time through a ``SimpleQueue`` (one
hand-off per batch, never one per item), the kernel runs in the thread, and the outcome
returns with one ``call_soon_threadsafe`` per batch. cv2 and torch release the GIL while
they compute, so ``instance_num`` workers really run in parallel.

A :class:`ThreadBinding` is the hook where GPU work binds the thread to a device and a
CUDA stream, wraps each batch, and waits for the stream before results go back.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import queue
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Protocol

from torchweir.actors.metrics import Histogram
from torchweir.errors import KernelError
from torchweir.kernels.base import InstanceContext, Kernel

if TYPE_CHECKING:
    from torchweir.actors.request import Token

#: One slot per item of a batch: ``None`` for success, else that item's own error.
Errors = list[BaseException | None] | None
DoneCallback = Callable[["InstanceWorker", "list[Token]", Errors], None]


class ThreadBinding(Protocol):
    """Binds an instance thread to its device. The CPU binding does nothing."""

    def enter(self, ctx: InstanceContext) -> InstanceContext:
        """Called once in the new thread; returns the context with device/stream set."""
        ...

    def batch_scope(self, ctx: InstanceContext) -> AbstractContextManager[object]:
        """Wraps each batch (e.g. makes the instance's stream current)."""
        ...

    def complete(self, ctx: InstanceContext) -> None:
        """Blocks until the batch's device work is done, before results go back."""
        ...


class DeferredBinding(ThreadBinding, Protocol):
    """A binding that can post results from a stream-ordered callback instead.

    ``depth`` is how many batches the instance accepts at once (launch one while the
    device still runs the other).
    """

    depth: int

    def complete_later(self, ctx: InstanceContext, callback: Callable[[], None]) -> None: ...


class HostBinding:
    """The binding for CPU nodes: nothing to bind, nothing to wait for."""

    def enter(self, ctx: InstanceContext) -> InstanceContext:
        return ctx

    def batch_scope(self, ctx: InstanceContext) -> AbstractContextManager[object]:
        return contextlib.nullcontext()

    def complete(self, ctx: InstanceContext) -> None:
        return None


class InstanceWorker:
    """One instance of a node: a thread, its kernel copy, and its device binding.

    Args:
        kernel: the node's kernel; ``kernel.setup(ctx)`` runs in the thread and returns
            the object this instance uses.
        ctx: the instance's identity and placement.
        on_done: called on the loop thread with ``(worker, batch, errors)``.
        binding: device hook; defaults to :class:`HostBinding`.
        prefetch: batches the instance may hold queued beyond the one it runs, so that it
            starts the next without waiting for the event loop to hand it over (the
            hand-off costs a few hundred microseconds under load). The actor fills these
            slots with full batches only (see :mod:`torchweir.actors.actor`).
    """

    def __init__(
        self,
        kernel: Kernel,
        ctx: InstanceContext,
        on_done: DoneCallback,
        binding: ThreadBinding | None = None,
        prefetch: int = 0,
    ) -> None:
        if isinstance(prefetch, bool) or not isinstance(prefetch, int) or prefetch < 0:
            raise ValueError(f"prefetch must be an int >= 0, got {prefetch!r}")
        self.ctx = ctx
        self.busy_seconds = 0.0
        self.timings = Histogram()  # written by this instance's thread only
        self._kernel = kernel
        self._on_done = on_done
        self._binding: ThreadBinding = binding if binding is not None else HostBinding()
        self._deferred = getattr(self._binding, "depth", 1) > 1
        #: Batches this instance accepts at once: its binding's depth (2 for a deferred
        #: completion, else 1) plus ``prefetch``.
        self.depth: int = getattr(self._binding, "depth", 1) + prefetch
        self._inbox: queue.SimpleQueue[list[Token] | None] = queue.SimpleQueue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._thread = threading.Thread(
            target=self._main, name=f"torchweir:{ctx.node}:{ctx.index}", daemon=True
        )

    def __repr__(self) -> str:
        return f"<InstanceWorker {self.ctx.node}#{self.ctx.index} on {self.ctx.device}>"

    async def start(self) -> None:
        """Start the thread and wait until the kernel's per-instance setup finished.

        Raises:
            Exception: whatever the kernel's ``setup`` raised, in this instance's thread.
        """
        self._loop = asyncio.get_running_loop()
        self._thread.start()
        await asyncio.wrap_future(self._ready)

    def run(self, batch: list[Token]) -> None:
        """Hand one batch to the thread; returns at once."""
        self._inbox.put(batch)

    def stop(self) -> None:
        """Ask the thread to exit after the batch it is running, if any."""
        self._inbox.put(None)

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread to exit; ``True`` if it did (blocking, call off-loop)."""
        if self._thread.ident is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _main(self) -> None:
        try:
            ctx = self._binding.enter(self.ctx)
            kernel = self._kernel.setup(ctx)
        except BaseException as exc:  # reported to start(), which raises it
            self._ready.set_exception(exc)
            return
        self.ctx = ctx
        self._ready.set_result(None)
        try:
            for batch in iter(self._inbox.get, None):
                errors = self._execute(kernel, batch, wait=not self._deferred)
                post = self._poster(batch, errors)
                if self._deferred:
                    self._binding.complete_later(self.ctx, post)  # type: ignore[attr-defined]
                else:
                    post()
        finally:
            kernel.close()

    def _poster(self, batch: list[Token], errors: Errors) -> Callable[[], None]:
        loop = self._loop
        assert loop is not None

        def post() -> None:
            # RuntimeError: the loop closed under us; the runtime already failed the jobs
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._on_done, self, batch, errors)

        return post

    def _execute(self, kernel: Kernel, batch: list[Token], wait: bool = True) -> Errors:
        started = time.perf_counter()
        try:
            with self._binding.batch_scope(self.ctx):
                outcome = kernel.forward([token.payload for token in batch])
                if wait:
                    self._binding.complete(self.ctx)
        except BaseException as exc:  # a whole-batch failure fails this batch only
            return [whole_batch_error(exc, self.ctx.node, len(batch)) for _ in batch]
        finally:
            elapsed = time.perf_counter() - started
            self.busy_seconds += elapsed
            self.timings.observe(elapsed)
        if outcome is None:
            return None
        if len(outcome) != len(batch):
            message = f"forward() returned {len(outcome)} outcomes for a batch of {len(batch)}"
            return [KernelError(message, node=self.ctx.node) for _ in batch]
        return [None if error is None else item_error(error, self.ctx.node) for error in outcome]


def item_error(error: BaseException, node: str) -> KernelError:
    """Attribute one item's failure to ``node`` as a fresh :class:`KernelError`."""
    if isinstance(error, KernelError):
        return error.for_node(node)  # fresh even if a kernel reused one instance for many
    wrapped = KernelError(f"{type(error).__name__}: {error}", node=node)
    wrapped.__cause__ = error
    return wrapped


def whole_batch_error(error: BaseException, node: str, size: int) -> KernelError:
    """A fresh error for one request of a batch whose kernel call raised ``error``."""
    if isinstance(error, KernelError):
        return error.for_node(node)
    wrapped = KernelError(f"batch of {size} failed: {type(error).__name__}: {error}", node=node)
    wrapped.__cause__ = error
    return wrapped
