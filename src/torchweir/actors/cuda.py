"""Binding instance threads to GPUs: one device and one CUDA stream per instance.

:class:`CudaBinding` makes the instance's own stream current for its whole thread, so
nothing it runs lands on the default stream and ``instance_num`` copies overlap. Before
results go back to the event loop the batch's stream work must be complete. Two ways:

* ``"event"`` (default): record an event and wait on it in the instance thread, asleep
  (a blocking-sync event), so that a waiting instance costs no CPU.
* ``"spin"``: the same, but the thread spins on the event: it wakes a few microseconds
  sooner and keeps a core busy the whole time the GPU works. On an H200 the ResNet-50
  service's instances spent most of their CPU so.
* ``"callback"``: enqueue a stream-ordered host function (``cuLaunchHostFunc`` on the
  driver API). The thread returns at once and can launch the next batch while this one
  runs; the host function posts the results when the stream reaches it. Workers with
  this binding accept two batches at a time (``depth = 2``).

torch is imported lazily: this module loads on machines without CUDA.

Hardware queues: a CUDA context feeds the GPU through ``CUDA_DEVICE_MAX_CONNECTIONS``
work queues, 8 by default, and streams beyond that share them. Work queued behind another
stream's kernel in a shared queue waits for it (a false dependency), so with the streams
of a few instances plus torch's pool, a decode stream ended up queued behind the model's
kernels: on an H200, nvJPEG decode next to a ResNet-50 model ran at 3,800 img/s with 8
queues and 14,500 img/s with 32. torchweir asks for 32 when it is imported, unless the
variable is set or CUDA is already initialised (the value is read when the context is
created), and the runtime warns when a GPU graph runs with the default.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import os
import sys
import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from torchweir.errors import ConfigError
from torchweir.kernels.base import InstanceContext

__all__ = [
    "CudaBinding",
    "cuda_device_count",
    "hardware_queue_warning",
    "place_instances",
    "widen_hardware_queues",
]

HARDWARE_QUEUES = "CUDA_DEVICE_MAX_CONNECTIONS"

COMPLETIONS = ("event", "spin", "callback")
#: ``stream_priority`` -> CUDA stream priority (lower runs first; 0 is CUDA's default).
PRIORITIES = {"normal": 0, "high": -1}


def cuda_device_count() -> int:
    """Visible CUDA devices; 0 when torch has no CUDA."""
    try:
        import torch
    except ImportError:
        return 0
    return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0


def widen_hardware_queues() -> None:
    """Ask for 32 hardware queues unless the user chose a number or CUDA is already up."""
    if HARDWARE_QUEUES in os.environ:
        return
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        return  # too late to take effect; hardware_queue_warning says so
    os.environ[HARDWARE_QUEUES] = "32"


def hardware_queue_warning() -> str | None:
    """Why GPU instances may wait on each other's kernels, or None when they need not."""
    if os.environ.get(HARDWARE_QUEUES):
        return None
    return (
        "CUDA was initialised before torchweir was imported, so its context has 8 hardware "
        "queues: GPU instances' streams share them and wait on each other's kernels (on an "
        "H200, nvJPEG decode next to a ResNet-50 model ran about 4x slower). Import torchweir "
        f"before the first CUDA call, or export {HARDWARE_QUEUES}=32."
    )


def place_instances(instance_num: int, device_id: int | None, device_count: int) -> list[int]:
    """The GPU of each instance: ``device_id`` for all, else round-robin over the GPUs.

    Raises:
        ConfigError: no GPU is visible, or ``device_id`` names one that is not.
    """
    if device_count < 1:
        raise ConfigError("needs a CUDA GPU, and none is visible", key="device_id")
    if device_id is not None and device_id >= 0:
        if device_id >= device_count:
            raise ConfigError(
                f"device_id {device_id} is not visible ({device_count} GPU(s): "
                f"0..{device_count - 1})",
                key="device_id",
            )
        return [device_id] * instance_num
    return [index % device_count for index in range(instance_num)]


class CudaBinding:
    """Device, stream and completion for one GPU instance thread.

    Args:
        completion: ``"event"``, ``"spin"`` or ``"callback"`` (see the module docstring).
        priority: ``"normal"`` or ``"high"``: the priority of the instance's stream. When
            nodes share a GPU, the kernels of a high-priority stream are scheduled ahead of
            those already waiting on normal ones, so a short stage (decode, resize) is not
            kept waiting behind a long one (the model).
    """

    def __init__(self, completion: str = "event", priority: str = "normal") -> None:
        if completion not in COMPLETIONS:
            raise ConfigError(
                f"completion must be one of {COMPLETIONS}, got {completion!r}", key="completion"
            )
        if priority not in PRIORITIES:
            raise ConfigError(
                f"stream_priority must be one of {tuple(PRIORITIES)}, got {priority!r}",
                key="stream_priority",
            )
        self.completion = completion
        self.priority = PRIORITIES[priority]
        self.depth = 2 if completion == "callback" else 1
        self._host_fn = _HostFunctions() if completion == "callback" else None

    def enter(self, ctx: InstanceContext) -> InstanceContext:
        import torch

        device = torch.device(ctx.device)
        torch.cuda.set_device(device)
        stream = torch.cuda.Stream(device=device, priority=self.priority)  # type: ignore[no-untyped-call]
        torch.cuda.set_stream(stream)  # this thread's current stream from now on
        return replace(ctx, stream=stream)

    def batch_scope(self, ctx: InstanceContext) -> contextlib.AbstractContextManager[object]:
        import torch

        return torch.cuda.stream(ctx.stream)

    def complete(self, ctx: InstanceContext) -> None:
        """Wait until the instance's stream has finished the batch (event and spin)."""
        import torch

        event = torch.cuda.Event(blocking=self.completion == "event")  # type: ignore[no-untyped-call]
        event.record(ctx.stream)
        event.synchronize()

    def complete_later(self, ctx: InstanceContext, callback: Callable[[], None]) -> None:
        """Run ``callback`` once the stream reaches this point (callback mode).

        ``callback`` runs on a CUDA driver thread and must not call CUDA.
        """
        assert self._host_fn is not None
        self._host_fn.launch(ctx.stream.cuda_stream, callback)


class _HostFunctions:
    """``cuLaunchHostFunc`` through ctypes, with Python callables kept alive until run."""

    _lib: Any = None
    _lock = threading.Lock()

    def __init__(self) -> None:
        self._pending: dict[int, Callable[[], None]] = {}
        self._ids = itertools.count(1)
        host_fn_type = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
        self._trampoline = host_fn_type(self._run)  # one C pointer, reused for every call

    @classmethod
    def _driver(cls) -> Any:
        with cls._lock:
            if cls._lib is None:
                lib = ctypes.CDLL("libcuda.so.1")
                lib.cuLaunchHostFunc.restype = ctypes.c_int
                lib.cuLaunchHostFunc.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
                cls._lib = lib
            return cls._lib

    def launch(self, stream_handle: int, callback: Callable[[], None]) -> None:
        key = next(self._ids)
        self._pending[key] = callback
        pointer = ctypes.cast(self._trampoline, ctypes.c_void_p)
        status = self._driver().cuLaunchHostFunc(
            ctypes.c_void_p(stream_handle), pointer, ctypes.c_void_p(key)
        )
        if status != 0:
            del self._pending[key]
            raise RuntimeError(f"cuLaunchHostFunc failed with CUresult {status}")

    def _run(self, key: int | None) -> None:
        callback = self._pending.pop(key or 0, None)
        if callback is not None:
            callback()
