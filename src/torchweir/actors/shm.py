"""Shared memory between the event loop and process instances: arrays that come back
without a copy, and large ``bytes`` that go there without the socket.

A child writes the arrays of each answer into a *slot*, a file in ``/dev/shm`` that both
processes map, and the parent hands the next node views of it: no copy on the parent's
event loop (copying each decoded image out took half that thread's time in the
CPU-decode ResNet-50 service). A slot is written again only after every view of it has
gone: the parent watches the views' common base array and tells the child, with the
next batch it sends, which slots are free. Arrays that are kept (results a caller holds
on to) keep their slot, so memory is what the caller holds, as with copies.

The other way, large ``bytes`` values of requests (encoded images) are copied into a
slot of the parent's, once, instead of being pickled and written to the socket on the
event loop; the child reads them back into ``bytes``, so kernels see what they always
saw. That slot is free again once the batch's answer has come.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import glob
import math
import mmap
import os
import sys
import tempfile
import uuid
import weakref
from typing import Any

import numpy as np

__all__ = [
    "ChildInputs",
    "ChildSlots",
    "InputSlots",
    "Mapped",
    "ParentSlots",
    "Passed",
    "Placement",
    "Shared",
    "SlotPool",
    "unlink_left_by",
]

#: Where one batch's arrays or bytes lie: the slot's path (the other process maps a path
#: it does not know yet), and the paths of free slots dropped since (to be unmapped).
#: Paths are never reused, so a known path is always the same file.
Placement = tuple[str, list[str]]

#: ``bytes`` values at least this long go to the child through an input slot.
PASSED_BYTES = 4096
_ALIGN = 64
_GRAIN = 1 << 16  # slot sizes are multiples of this
_SMALLEST = 1 << 18


class Shared:
    """Where one array of an answer lies in its slot."""

    __slots__ = ("dtype", "offset", "shape", "tensor")

    def __init__(self, offset: int, dtype: str, shape: tuple[int, ...], tensor: bool) -> None:
        self.offset, self.dtype, self.shape, self.tensor = offset, dtype, shape, tensor


class Passed:
    """Where one ``bytes`` value of a request lies in its input slot."""

    __slots__ = ("length", "offset")

    def __init__(self, offset: int, length: int) -> None:
        self.offset, self.length = offset, length


class SlotPool:
    """Slots this process created: taken for one batch, given back once it is read.

    A new slot is as large as the largest ever asked for, so that after warm-up every
    batch fits a free one; a free slot too small for a request is replaced, so that
    their number stays put.
    """

    def __init__(self) -> None:
        self._known: dict[str, Mapped] = {}
        self._free: list[Mapped] = []
        self._largest = 0

    def take(self, size: int) -> tuple[Mapped, list[str]]:
        """A free slot of at least ``size`` bytes, and the paths of free slots dropped to
        make room (their files are gone).

        Raises:
            OSError: no shared memory could be had for a new slot (``/dev/shm`` full).
        """
        fitting = [slot for slot in self._free if slot.size >= size]
        if fitting:
            slot = min(fitting, key=lambda s: s.size)
            self._free.remove(slot)
            return slot, []
        dropped = []
        if self._free:
            old = self._free.pop()
            self._forget(old)
            dropped.append(old.path)
        self._largest = max(self._largest, size)
        slot = Mapped.create(max(-(-self._largest // _GRAIN) * _GRAIN, _SMALLEST))
        self._known[slot.path] = slot
        return slot, dropped

    def give(self, path: str) -> None:
        """The slot at ``path`` is free again (unknown paths are ignored)."""
        slot = self._known.get(path)
        if slot is not None:
            self._free.append(slot)

    def _forget(self, slot: Mapped) -> None:
        del self._known[slot.path]
        slot.close()
        slot.unlink()

    def close(self) -> None:
        """Unlink every slot (mappings in the other process stay valid)."""
        for slot in list(self._known.values()):
            self._forget(slot)
        self._free.clear()


class ChildSlots:
    """The child's slots: one per answer, reused once the parent has released it."""

    def __init__(self) -> None:
        self._pool = SlotPool()

    def release(self, paths: list[str]) -> None:
        """Slots whose views are all gone in the parent (unknown paths are ignored)."""
        for path in paths:
            self._pool.give(path)

    def store(self, updates: list[dict[str, Any]]) -> Placement | None:
        """Move every array and CPU tensor of ``updates`` into a free slot, in place.

        Raises:
            OSError: no shared memory could be had for a new slot (``/dev/shm`` full).
        """
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
            total += -(-array.nbytes // _ALIGN) * _ALIGN
        slot, dropped = self._pool.take(total)
        for (update, key, array, tensor), offset in zip(found, offsets, strict=True):
            target = np.frombuffer(slot.map, array.dtype, array.size, offset)
            target[...] = array.reshape(-1)
            update[key] = Shared(offset, array.dtype.str, tuple(array.shape), tensor)
        return slot.path, dropped

    def close(self) -> None:
        """Unlink every slot (the parent's mappings stay valid)."""
        self._pool.close()


class InputSlots:
    """The parent's input slots: one per batch in flight, given back with its answer."""

    def __init__(self) -> None:
        self._pool = SlotPool()

    def place(self, payloads: list[dict[str, Any]]) -> tuple[list[Any], Placement | None]:
        """What to send for ``payloads``: copies in which every large ``bytes`` value is a
        :class:`Passed` into a slot (``payloads`` themselves stay as they are).

        Raises:
            OSError: no shared memory could be had for a new slot (``/dev/shm`` full).
        """
        found = [
            (i, key, value)
            for i, payload in enumerate(payloads)
            for key, value in payload.items()
            if type(value) is bytes and len(value) >= PASSED_BYTES
        ]
        if not found:
            return payloads, None
        total = sum(-(-len(value) // _ALIGN) * _ALIGN for _, _, value in found)
        slot, dropped = self._pool.take(total)
        copies = [dict(payload) for payload in payloads]
        offset = 0
        for i, key, value in found:
            slot.map[offset : offset + len(value)] = value
            copies[i][key] = Passed(offset, len(value))
            offset += -(-len(value) // _ALIGN) * _ALIGN
        return copies, (slot.path, dropped)

    def give(self, placement: Placement | None) -> None:
        """The batch sent with ``placement`` is answered: its slot is free again."""
        if placement is not None:
            self._pool.give(placement[0])

    def close(self) -> None:
        self._pool.close()


class ChildInputs:
    """The child's side of the input slots: maps them and reads ``bytes`` back."""

    def __init__(self) -> None:
        self._mapped: dict[str, Mapped] = {}

    def restore(self, placement: Placement | None, items: list[dict[str, Any]]) -> None:
        """Replace every :class:`Passed` in ``items`` by its ``bytes``."""
        if placement is None:
            return
        path, dropped = placement
        for old in dropped:
            gone = self._mapped.pop(old, None)
            if gone is not None:
                gone.close()
        if path not in self._mapped:
            self._mapped[path] = Mapped(path)
        memory = self._mapped[path].map
        for item in items:
            for key, value in item.items():
                if isinstance(value, Passed):
                    item[key] = memory[value.offset : value.offset + value.length]

    def close(self) -> None:
        for mapped in self._mapped.values():
            mapped.close()
        self._mapped.clear()


class ParentSlots:
    """The parent's side: maps the child's slots and turns answers into views of them.

    Views are made from one base array per answer; when it is garbage (the last view
    gone, on whatever thread), its slot is queued for release. ``take_released`` is
    called by the loop only; the queue's ``append`` is safe from any thread.
    """

    def __init__(self) -> None:
        self._mapped: dict[str, Mapped] = {}
        self._released: collections.deque[str] = collections.deque()

    def views(self, placement: Placement, updates: list[dict[str, Any]]) -> None:
        """Replace every :class:`Shared` in ``updates`` by a view of its slot."""
        path, dropped = placement
        for old in dropped:
            self._mapped.pop(old, None)  # unmapped once its (dead) views are collected
        if path not in self._mapped:
            self._mapped[path] = Mapped(path)
        base = np.frombuffer(self._mapped[path].map, np.uint8)
        weakref.finalize(base, self._released.append, path).atexit = False
        for update in updates:
            for key, value in update.items():
                if isinstance(value, Shared):
                    update[key] = _view(base, value)

    def take_released(self) -> list[str]:
        """The slots released since the last call, to send to the child."""
        released = []
        with contextlib.suppress(IndexError):
            while True:
                released.append(self._released.popleft())
        return released

    def forget(self) -> None:
        """Drop every mapping (views keep theirs alive): the child is gone."""
        self._mapped.clear()
        self._released.clear()


def _view(base: np.ndarray, shared: Shared) -> Any:
    dtype = np.dtype(shared.dtype)
    size = math.prod(shared.shape) * dtype.itemsize
    array = base[shared.offset : shared.offset + size].view(dtype).reshape(shared.shape)
    if shared.tensor:
        import torch

        return torch.from_numpy(array)
    return array


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


class Mapped:
    """A file in ``/dev/shm`` (RAM on Linux; the temp folder elsewhere) mapped into
    memory: shared memory without multiprocessing's resource tracker, which would start
    a tracker process per child and unlink the memory when the parent merely detaches.

    The parent never closes a child's slot: views of it may outlive the worker, and
    the mapping goes when the last of them does.
    """

    def __init__(self, path: str, size: int = 0) -> None:
        flags = os.O_RDWR | (os.O_CREAT | os.O_EXCL if size else 0)
        fd = os.open(path, flags, 0o600)
        try:
            if size:
                _reserve(fd, size)
            self.map = mmap.mmap(fd, 0)
        except BaseException:
            if size:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
            raise
        finally:
            os.close(fd)
        self.path = path
        self.size = len(self.map)

    @classmethod
    def create(cls, size: int) -> Mapped:
        """A new file named after this process, so that its parent can find what is
        left when it dies (:func:`unlink_left_by`).

        Where ``/dev/shm`` is full (containers often give it 64 MiB), the file goes to
        the temp folder: still memory shared by mapping, backed by the page cache.

        Raises:
            OSError: neither folder has room.
        """
        name = f"torchweir-{os.getpid()}-{uuid.uuid4().hex}"
        *preferred, last = _folders()
        for folder in preferred:
            try:
                return cls(os.path.join(folder, name), size)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
        return cls(os.path.join(last, name), size)

    def close(self) -> None:
        self.map.close()

    def unlink(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


def unlink_left_by(pid: int) -> None:
    """Remove the shared-memory files of a child that died without cleaning up."""
    for folder in _folders():
        for path in glob.glob(os.path.join(folder, f"torchweir-{pid}-*")):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)


def _reserve(fd: int, size: int) -> None:
    """Allocate the file's pages now: a full ``/dev/shm`` is an ``OSError`` here rather
    than a SIGBUS at the first write."""
    if hasattr(os, "posix_fallocate"):
        os.posix_fallocate(fd, 0, size)
    else:  # macOS
        os.ftruncate(fd, size)


def _folders() -> list[str]:
    """Where slots go, in order of preference: RAM on Linux, then the temp folder."""
    shm = ["/dev/shm"] if os.path.isdir("/dev/shm") else []
    return [*shm, tempfile.gettempdir()]
