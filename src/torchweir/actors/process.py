"""Instances in processes of their own: CPU kernels that do not share the GIL.

A decode node on instance threads runs its OpenCV calls in parallel, but the Python
around them (and every return to the interpreter) takes turns on one GIL: on a 16-core
H200 host, 16 decode threads did 7,500 img/s where 16 processes did 22,000. With
``executor = "process"`` each instance thread drives one child process instead:

* the child (a fresh interpreter, never a fork: CUDA and threads do not survive one, and
  unlike multiprocessing's spawn it does not re-run the caller's ``__main__``) builds
  the node's kernel from its spec and sets it up there, with one OpenCV and torch thread;
* the thread sends each batch's request dicts (pickled) and sleeps on the pipe, without
  the GIL, until the child answers;
* arrays and CPU tensors in the answer come back through a shared-memory arena, copied
  out once, and everything else pickled;
* a child that dies (a decoder crashing on a hostile file) fails its batch with
  :class:`~torchweir.errors.KernelError` and is started again for the next one.

Kernels must be importable in the child: registered in a module the child imports,
given by import path, or a picklable kernel object.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import pickle
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from torchweir.errors import KernelError
from torchweir.kernels.base import InstanceContext, Kernel, Outcome, Payload

__all__ = ["ProcessKernel", "child_main"]

#: Builds the node's kernel in the child; must pickle by reference (a module function,
#: or a functools.partial of one).
Factory = Callable[[], Kernel]


class _Shared:
    """Where one array of an answer lies in the arena."""

    __slots__ = ("dtype", "offset", "shape", "tensor")

    def __init__(self, offset: int, dtype: str, shape: tuple[int, ...], tensor: bool) -> None:
        self.offset, self.dtype, self.shape, self.tensor = offset, dtype, shape, tensor

    def __reduce__(self) -> tuple[Any, ...]:
        return (_Shared, (self.offset, self.dtype, self.shape, self.tensor))


class ProcessKernel(Kernel):
    """Runs ``factory()``'s kernel in a child process per instance.

    Args:
        factory: builds the kernel (in the child).
        max_batch: the kernel's ``max_batch``, known to the parent.
        node: the node's name, for errors.
    """

    def __init__(self, factory: Factory, max_batch: int, node: str) -> None:
        self.factory = factory
        self.max_batch = max_batch
        self.node = node
        self._ctx: InstanceContext | None = None
        self._conn: Connection | None = None
        self._process: Any = None
        self._arena: _Mapped | None = None

    def __repr__(self) -> str:
        pid = self._process.pid if self._process is not None else None
        return f"<ProcessKernel {self.node} pid={pid}>"

    def setup(self, ctx: InstanceContext) -> Kernel:
        """Start this instance's child and wait until its kernel is set up.

        Raises:
            Exception: what the kernel's construction or ``setup`` raised in the child.
        """
        instance = ProcessKernel(self.factory, self.max_batch, self.node)
        instance._ctx = ctx
        instance._start()
        return instance

    def forward(self, items: list[Payload]) -> Outcome:
        if self._conn is None:
            self._start()  # the last child died: a new one for this batch
        assert self._conn is not None
        try:
            self._conn.send_bytes(pickle.dumps(items, protocol=pickle.HIGHEST_PROTOCOL))
            kind, body = pickle.loads(self._conn.recv_bytes())
        except (EOFError, OSError, BrokenPipeError):
            code = self._reap()
            self._release_arena(unlink=True)  # the child cannot any more
            raise KernelError(
                f"its worker process died (exit code {code}) running a batch of "
                f"{len(items)}; a new one starts for the next batch",
                node=self.node,
            ) from None
        if kind == "raised":
            raise body
        errors, updates, arena = body
        if arena is not None:
            self._attach(arena)
        for item, update in zip(items, updates, strict=True):
            for key, value in update.items():
                item[key] = self._copied(value) if isinstance(value, _Shared) else value
        return errors  # type: ignore[no-any-return]

    def close(self) -> None:
        """Stop the child (it exits when its pipe closes) and release the arena."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        self._reap()
        self._release_arena(unlink=False)  # the child unlinks it as it exits

    def _release_arena(self, *, unlink: bool) -> None:
        if self._arena is not None:
            self._arena.close()
            if unlink:
                self._arena.unlink()
            self._arena = None

    def _start(self) -> None:
        assert self._ctx is not None
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
        conn = Connection(ours.detach())
        try:
            conn.send_bytes(pickle.dumps((self.factory, self._ctx)))
            kind, body = pickle.loads(conn.recv_bytes())
        except (EOFError, OSError):
            conn.close()
            raise KernelError(
                f"its worker process exited with code {process.wait()} while starting",
                node=self.node,
            ) from None
        if kind == "failed":
            conn.close()
            process.wait()
            raise body
        self._conn, self._process = conn, process

    def _reap(self) -> int | None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        code = None
        if self._process is not None:
            try:
                code = self._process.wait(5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                code = self._process.wait()
            self._process = None
        return code

    def _attach(self, name: str) -> None:
        if self._arena is not None:
            self._arena.close()
        self._arena = _Mapped(name)

    def _copied(self, shared: _Shared) -> Any:
        assert self._arena is not None
        dtype = np.dtype(shared.dtype)
        count = int(np.prod(shared.shape, dtype=np.int64))
        view = np.frombuffer(self._arena.buf, dtype, count, shared.offset)
        array = view.reshape(shared.shape).copy()  # the arena is reused by the next batch
        if shared.tensor:
            import torch

            return torch.from_numpy(array)
        return array


_BOOTSTRAP = "from torchweir.actors.process import child_main; child_main()"


def child_main() -> None:
    """The child: build and set up the kernel, then answer batches until the pipe closes.

    Its first message is the pickled ``(factory, ctx)``; its argument, the socket's fd.
    """
    conn = Connection(int(sys.argv[1]))
    try:
        factory, ctx = pickle.loads(conn.recv_bytes())
        _one_thread_each()
        kernel = factory().setup(ctx)
    except BaseException as exc:
        conn.send_bytes(pickle.dumps(("failed", _picklable(exc))))
        return
    conn.send_bytes(pickle.dumps(("ready", None)))
    arena = _Arena(ctx)
    try:
        while True:
            try:
                items = pickle.loads(conn.recv_bytes())
            except (EOFError, OSError):
                return  # the parent closed the pipe or exited
            conn.send_bytes(_answer(kernel, items, arena))
    finally:
        arena.release()


def _one_thread_each() -> None:
    if "cv2" in sys.modules or _importable("cv2"):
        import cv2

        cv2.setNumThreads(1)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def _answer(kernel: Kernel, items: list[Payload], arena: _Arena) -> bytes:
    originals = [item.get("data") for item in items]
    try:
        errors = kernel.forward(items)
    except Exception as exc:
        return pickle.dumps(("raised", _picklable(exc)))
    updates = [
        {k: v for k, v in item.items() if not (k == "data" and v is data)}
        for item, data in zip(items, originals, strict=True)
    ]
    name = arena.store(updates)
    picklable_errors = None if errors is None else [_picklable(e) for e in errors]
    return pickle.dumps(
        ("done", (picklable_errors, updates, name)), protocol=pickle.HIGHEST_PROTOCOL
    )


class _Arena:
    """The child's shared memory for arrays in answers; grows, never shrinks."""

    def __init__(self, ctx: InstanceContext) -> None:
        self.memory: _Mapped | None = None
        self.ctx = ctx

    def store(self, updates: list[dict[str, Any]]) -> str | None:
        """Move every array and CPU tensor of ``updates`` into the arena, in place;
        returns the arena's name when it is new (the parent must attach to it)."""
        found = [
            (update, key, array, tensor)
            for update in updates
            for key, value in update.items()
            for array, tensor in [_as_array(value)]
            if array is not None
        ]
        if not found:
            return None
        offsets, total = [], 0
        for _, _, array, _ in found:
            offsets.append(total)
            total += -(-array.nbytes // 64) * 64  # aligned
        renamed = None
        if self.memory is None or self.memory.size < total:
            self.release()
            self.memory = _Mapped.create(max(total * 2, 1 << 20))
            renamed = self.memory.path
        for (update, key, array, tensor), offset in zip(found, offsets, strict=True):
            target = np.frombuffer(self.memory.buf, array.dtype, array.size, offset)
            target[...] = array.reshape(-1)
            update[key] = _Shared(offset, array.dtype.str, tuple(array.shape), tensor)
        return renamed

    def release(self) -> None:
        if self.memory is not None:
            self.memory.close()
            self.memory.unlink()
            self.memory = None


class _Mapped:
    """A file in ``/dev/shm`` (RAM on Linux; the temp folder elsewhere) mapped into
    memory: shared memory without multiprocessing's resource tracker, which would start
    a tracker process per child and unlink the arena when the parent merely detaches."""

    def __init__(self, path: str, size: int = 0) -> None:
        flags = os.O_RDWR | (os.O_CREAT | os.O_EXCL if size else 0)
        fd = os.open(path, flags, 0o600)
        try:
            if size:
                os.ftruncate(fd, size)
            self.map = mmap.mmap(fd, 0)
        finally:
            os.close(fd)
        self.path = path
        self.size = len(self.map)
        self.buf = memoryview(self.map)

    @classmethod
    def create(cls, size: int) -> _Mapped:
        folder = "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()
        return cls(os.path.join(folder, f"torchweir-{os.getpid()}-{uuid.uuid4().hex}"), size)

    def close(self) -> None:
        self.buf.release()
        self.map.close()

    def unlink(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


def _as_array(value: Any) -> tuple[np.ndarray | None, bool]:
    """A C-contiguous numpy view of an array or CPU tensor, and whether it was a tensor."""
    if isinstance(value, np.ndarray) and value.dtype.kind in "biuf" and value.size:
        return np.ascontiguousarray(value), False
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor) and value.device.type == "cpu":
        if value.dtype.is_complex or value.dtype == torch.bfloat16 or not value.numel():
            return None, False
        return np.ascontiguousarray(value.detach().numpy()), True
    return None, False


def _picklable(error: BaseException | None) -> BaseException | None:
    """``error`` if it survives pickling, else a :class:`KernelError` describing it."""
    if error is None:
        return None
    try:
        pickle.loads(pickle.dumps(error))
    except Exception:
        return KernelError(f"{type(error).__name__}: {error}")
    return error
