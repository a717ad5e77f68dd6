"""Instances in processes of their own: CPU kernels that do not share the GIL.

A decode node on instance threads runs its OpenCV calls in parallel, but the Python
around them, and every return from them, takes turns on one GIL: on a 16-core H200 host,
16 decode threads did 7,500 img/s where 16 processes did 22,000. With
``executor = "process"`` each instance is a child process instead:

* the child (a fresh interpreter, never a fork: CUDA and threads do not survive one, and
  unlike multiprocessing's spawn it does not re-run the caller's ``__main__``) builds
  the node's kernel from its spec and sets it up there, with one OpenCV and torch thread;
* the event loop writes each batch's request dicts (pickled) to the child's socket and a
  reader callback takes the answer: no thread in between to win the GIL back; large
  ``bytes`` values (encoded images) go through shared memory instead;
* arrays and CPU tensors in the answer come back as views of shared memory
  (:mod:`torchweir.actors.shm`), everything else pickled;
* a child that dies (a decoder crashing on a hostile file) fails the batches it held
  with :class:`~torchweir.errors.KernelError` and another one is started.

Kernels must be importable in the child: registered in a module the child imports,
given by import path, or a picklable kernel object.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import pickle
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from torchweir.actors.malloc import keep_freed_buffers
from torchweir.actors.metrics import Histogram
from torchweir.actors.request import Token
from torchweir.actors.shm import (
    ChildInputs,
    ChildSlots,
    InputSlots,
    ParentSlots,
    Placement,
    unlink_left_by,
)
from torchweir.actors.worker import Errors, item_error, whole_batch_error
from torchweir.errors import KernelError
from torchweir.kernels.base import InstanceContext, Kernel, Payload

__all__ = ["ProcessWorker", "child_main"]

#: Builds the node's kernel in the child; must pickle by reference (a module function,
#: or a functools.partial of one).
Factory = Callable[[], Kernel]
#: ``on_done(worker, batch, errors)``: the actor's ``batch_done``.
OnDone = Callable[[Any, list[Token], Errors], None]


class ProcessWorker:
    """One instance of a node: a child process, driven from the event loop.

    There is no instance thread: the loop writes each batch to the child's socket and a
    reader callback takes the answer, so no thread has to win the GIL back between the
    child's answer and the actor (with 14 such threads the hand-offs, not the decoding,
    set the pace). Implements what :class:`~torchweir.actors.actor.Actor` needs of a
    worker, like :class:`~torchweir.actors.worker.InstanceWorker`.

    Args:
        factory: builds the node's kernel, in the child.
        ctx: the instance.
        on_done: ``on_done(worker, batch, errors)``, called on the loop.
        prefetch: batches sent ahead while the child runs one.
        send_data: whether the child sends back the ``data`` its kernel leaves; ``False``
            where nothing downstream reads it
            (:func:`~torchweir.runtime.build.data_read_after`).
    """

    def __init__(
        self,
        factory: Factory,
        ctx: InstanceContext,
        on_done: OnDone,
        prefetch: int = 0,
        send_data: bool = True,
    ) -> None:
        self.ctx = ctx
        self._send_data = send_data
        self.depth = 1 + prefetch
        self.busy_seconds = 0.0
        self.timings = Histogram()
        self._factory = factory
        self._on_done = on_done
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sock: socket.socket | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._slots = ParentSlots()
        self._inputs = InputSlots()
        #: batches sent and not yet answered: when, and the input slot they use
        self._sent: collections.deque[tuple[list[Token], float, Placement | None]] = (
            collections.deque()
        )
        self._held: list[list[Token]] = []  # while a new child starts
        self._inbox = bytearray()
        self._outbox = bytearray()
        self._stopping = False
        self._broken: BaseException | None = None
        self._last_answer = 0.0

    def __repr__(self) -> str:
        pid = self._process.pid if self._process is not None else None
        return f"<ProcessWorker {self.ctx.node}#{self.ctx.index} pid={pid}>"

    async def start(self) -> None:
        """Start the child and wait until its kernel is set up.

        Raises:
            Exception: what the kernel's construction or ``setup`` raised in the child.
        """
        self._loop = asyncio.get_running_loop()
        self._adopt(*await asyncio.to_thread(_spawn, self._factory, self.ctx, self._send_data))

    def run(self, batch: list[Token]) -> None:
        """Send one batch to the child (on the loop); its answer comes back by callback."""
        if self._broken is not None:
            self._finish(batch, self._failed(batch, self._broken), 0.0)
        elif self._sock is None:
            self._held.append(batch)
        else:
            self._send(batch)

    def stop(self) -> None:
        """Close the socket: the child exits once it has answered what it holds."""
        self._stopping = True
        self._close_socket()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the child to exit (blocking: call off-loop); kill it after ``timeout``."""
        exited = True
        if self._process is not None:
            try:
                self._process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
                unlink_left_by(self._process.pid)  # the child could not
                exited = False
        self._slots.forget()  # a child that exits unlinks its slots
        self._inputs.close()
        return exited

    def _adopt(self, sock: socket.socket, process: subprocess.Popen[bytes]) -> None:
        assert self._loop is not None
        sock.setblocking(False)
        self._sock, self._process = sock, process
        self._loop.add_reader(sock.fileno(), self._readable)
        held, self._held = self._held, []
        for batch in held:
            self._send(batch)

    def _send(self, batch: list[Token]) -> None:
        assert self._sock is not None
        assert self._loop is not None
        try:
            payloads, placement = self._inputs.place([t.payload for t in batch])
        except OSError as exc:
            error = KernelError(f"no shared memory for its requests: {exc}", node=self.ctx.node)
            self._finish(batch, self._failed(batch, error), 0.0)
            return
        message = (self._slots.take_released(), placement, payloads)
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        self._sent.append((batch, time.perf_counter(), placement))
        frame = _frame(data)
        if not self._outbox:
            try:
                sent = self._sock.send(frame)
            except BlockingIOError:
                sent = 0
            except OSError:
                return  # the child is gone; the reader sees EOF and fails the batch
            frame = frame[sent:]
            if frame:
                self._loop.add_writer(self._sock.fileno(), self._writable)
        self._outbox += frame

    def _writable(self) -> None:
        assert self._sock is not None
        assert self._loop is not None
        try:
            sent = self._sock.send(self._outbox)
        except BlockingIOError:
            return
        except OSError:
            sent = len(self._outbox)
        del self._outbox[:sent]
        if not self._outbox:
            self._loop.remove_writer(self._sock.fileno())

    def _readable(self) -> None:
        assert self._sock is not None
        try:
            chunk = self._sock.recv(1 << 20)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            self._died()
            return
        self._inbox += chunk
        while (found := _unframe(self._inbox)) is not None:
            body, used = found
            del self._inbox[:used]
            batch, sent_at, placement = self._sent.popleft()
            self._inputs.give(placement)
            self._finish(batch, self._answered(batch, body), sent_at)

    def _answered(self, batch: list[Token], body: bytes) -> Errors:
        node = self.ctx.node
        kind, content = pickle.loads(body)
        if kind == "raised":
            return [whole_batch_error(content, node, len(batch)) for _ in batch]
        errors, updates, placement = content
        if placement is not None:
            self._slots.views(placement, updates)
        for token, update in zip(batch, updates, strict=True):
            token.payload.update(update)
        if errors is None:
            return None
        return [None if e is None else item_error(e, node) for e in errors]

    def _finish(self, batch: list[Token], errors: Errors, sent_at: float) -> None:
        if sent_at:  # the child ran it from when it was sent or the last one was answered
            now = time.perf_counter()
            elapsed = now - max(sent_at, self._last_answer)
            self._last_answer = now
            self.busy_seconds += elapsed
            self.timings.observe(elapsed)
        self._on_done(self, batch, errors)

    def _failed(self, batch: list[Token], error: BaseException) -> Errors:
        return [whole_batch_error(error, self.ctx.node, len(batch)) for _ in batch]

    def _died(self) -> None:
        """The child is gone: fail what it held and, unless stopping, start another."""
        self._close_socket()
        if self._stopping:
            return
        assert self._loop is not None
        self._loop.create_task(self._replace())

    async def _replace(self) -> None:
        process, self._process = self._process, None
        code = await asyncio.to_thread(process.wait) if process is not None else None
        self._slots.forget()
        if process is not None:
            unlink_left_by(process.pid)  # the child could not
        lost = KernelError(
            f"its worker process died (exit code {code}); a new one is starting",
            node=self.ctx.node,
        )
        sent, self._sent = self._sent, collections.deque()
        for batch, sent_at, placement in sent:
            self._inputs.give(placement)
            self._finish(batch, self._failed(batch, lost), sent_at)
        try:
            child = await asyncio.to_thread(_spawn, self._factory, self.ctx, self._send_data)
        except Exception as exc:
            self._broken = KernelError(
                f"its worker process died and a new one failed to start: {exc}",
                node=self.ctx.node,
            )
            held, self._held = self._held, []
            for batch in held:
                self._finish(batch, self._failed(batch, self._broken), 0.0)
            return
        if self._stopping:
            child[0].close()
            self._process = child[1]
            return
        self._adopt(*child)

    def _close_socket(self) -> None:
        if self._sock is not None:
            assert self._loop is not None
            with contextlib.suppress(ValueError, OSError, RuntimeError):
                self._loop.remove_reader(self._sock.fileno())
                self._loop.remove_writer(self._sock.fileno())
            self._sock.close()
            self._sock = None
            self._outbox.clear()
            self._inbox.clear()


def _spawn(
    factory: Factory, ctx: InstanceContext, send_data: bool
) -> tuple[socket.socket, subprocess.Popen[bytes]]:
    """Start a child, hand it ``(factory, ctx, send_data)`` and wait until its kernel is
    set up."""
    ours, theirs = socket.socketpair()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
        "OMP_NUM_THREADS": "1",  # one core per process: no thread pools
    }
    process = subprocess.Popen(
        [sys.executable, "-c", _BOOTSTRAP, str(theirs.fileno())],
        pass_fds=(theirs.fileno(),),
        env=env,
        stdin=subprocess.DEVNULL,
    )
    theirs.close()
    conn = Connection(os.dup(ours.fileno()))  # blocking reads for the handshake only
    try:
        conn.send_bytes(pickle.dumps((factory, ctx, send_data)))
        kind, body = pickle.loads(conn.recv_bytes())
    except (EOFError, OSError):
        ours.close()
        raise KernelError(
            f"its worker process exited with code {process.wait()} while starting",
            node=ctx.node,
        ) from None
    finally:
        conn.close()
    if kind == "failed":
        ours.close()
        process.wait()
        raise body
    return ours, process


def _frame(data: bytes) -> bytes:
    """``multiprocessing.connection``'s framing, which the child reads and writes."""
    if len(data) > 0x7FFFFFFF:
        return struct.pack("!iQ", -1, len(data)) + data
    return struct.pack("!i", len(data)) + data


def _unframe(buffer: bytearray) -> tuple[bytes, int] | None:
    """The first whole message in ``buffer`` and the bytes it used, or ``None``."""
    if len(buffer) < 4:
        return None
    (size,) = struct.unpack_from("!i", buffer)
    header = 4
    if size == -1:
        if len(buffer) < 12:
            return None
        (size,) = struct.unpack_from("!Q", buffer, 4)
        header = 12
    if len(buffer) < header + size:
        return None
    return bytes(buffer[header : header + size]), header + size


_BOOTSTRAP = "from torchweir.actors.process import child_main; child_main()"


def child_main() -> None:
    """The child: build and set up the kernel, then answer batches until the pipe closes.

    Its first message is the pickled ``(factory, ctx, send_data)``; its argument, the
    socket's fd.
    """
    conn = Connection(int(sys.argv[1]))
    try:
        factory, ctx, send_data = pickle.loads(conn.recv_bytes())
        keep_freed_buffers()
        _one_thread_each()
        kernel = factory().setup(ctx)
    except BaseException as exc:
        conn.send_bytes(pickle.dumps(("failed", _picklable(exc))))
        return
    conn.send_bytes(pickle.dumps(("ready", None)))
    slots, inputs = ChildSlots(), ChildInputs()
    try:
        while True:
            try:
                released, placement, items = pickle.loads(conn.recv_bytes())
            except (EOFError, OSError):
                return  # the parent closed the pipe or exited
            slots.release(released)
            try:
                inputs.restore(placement, items)
            except OSError as exc:  # its input slot is gone: the parent is stopping
                answer = _raised(KernelError(f"cannot read its requests' memory: {exc}"))
            else:
                answer = _answer(kernel, items, slots, send_data)
            try:
                conn.send_bytes(answer)
            except OSError:
                return  # the parent closed the pipe or exited
    finally:
        slots.close()
        inputs.close()


def _one_thread_each() -> None:
    with contextlib.suppress(ImportError):
        import cv2

        cv2.setNumThreads(1)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)


def _answer(
    kernel: Kernel, items: list[Payload], slots: ChildSlots, send_data: bool = True
) -> bytes:
    """The pickled answer to one batch: per item, the keys the kernel set or changed
    (``data`` only if ``send_data``), its arrays placed in a slot."""
    originals = [item.get("data") for item in items]
    try:
        errors = kernel.forward(items)
    except Exception as exc:
        return _raised(exc)
    updates = [
        {k: v for k, v in item.items() if not (k == "data" and (v is data or not send_data))}
        for item, data in zip(items, originals, strict=True)
    ]
    try:
        placement = slots.store(updates)
    except OSError as exc:
        return _raised(KernelError(f"no shared memory for its answer: {exc}"))
    picklable_errors = None if errors is None else [_picklable(e) for e in errors]
    return pickle.dumps(
        ("done", (picklable_errors, updates, placement)), protocol=pickle.HIGHEST_PROTOCOL
    )


def _raised(error: BaseException) -> bytes:
    """The answer for a batch that failed as a whole."""
    return pickle.dumps(("raised", _picklable(error)))


def _picklable(error: BaseException | None) -> BaseException | None:
    """``error`` if it survives pickling, else a :class:`KernelError` describing it."""
    if error is None:
        return None
    try:
        pickle.loads(pickle.dumps(error))
    except Exception:
        return KernelError(f"{type(error).__name__}: {error}")
    return error
