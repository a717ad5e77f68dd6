"""What the machine did during a point: the process's CPU time, and the GPUs when visible.

CPU is the process's user + system time over wall time (``os.times``, so no extra
dependency), where 100 % is one core busy; it includes the child processes of
``executor = "process"`` nodes (read from ``/proc`` on Linux). GPUs are sampled by a
background thread through nvidia-ml-py (``pynvml``) every 200 ms; utilisation is the
driver's own "kernel running" percentage and memory is what the device has in use
(every process's, not only ours). Without the package, a driver or a GPU the GPU fields
are ``None``: telemetry is optional and never fails a benchmark.
"""

from __future__ import annotations

import datetime
import importlib
import os
import platform
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import msgspec

__all__ = ["GpuUsage", "Monitor", "Usage", "machine_info", "open_nvml"]

_MIB = 1024 * 1024


class GpuUsage(msgspec.Struct, frozen=True):
    """One GPU over one point: utilisation in %, memory in use in MiB."""

    index: int
    name: str
    util_mean_percent: float
    util_max_percent: float
    mem_mean_mib: float
    mem_max_mib: float
    samples: int


class Usage(msgspec.Struct, frozen=True):
    """The machine over one point; GPU figures combine every visible GPU.

    ``gpu_util_percent`` is the mean over GPUs and samples, ``gpu_util_max_percent`` the
    highest single sample, and ``gpu_mem_mib`` the highest total memory in use.
    """

    cpu_percent: float | None = None
    gpu_util_percent: float | None = None
    gpu_util_max_percent: float | None = None
    gpu_mem_mib: float | None = None
    gpus: tuple[GpuUsage, ...] = ()


def open_nvml() -> Any | None:
    """``pynvml``, initialised, or ``None`` when it, the driver or a GPU is missing."""
    try:
        nvml = importlib.import_module("pynvml")
        nvml.nvmlInit()
    except Exception:  # ImportError, NVMLError_LibraryNotFound, DriverNotLoaded, ...
        return None
    try:
        if nvml.nvmlDeviceGetCount() > 0:
            return nvml
    except Exception:
        pass
    nvml.nvmlShutdown()
    return None


def _visible_handles(nvml: Any) -> list[tuple[int, Any]]:
    """The GPUs this process may use: ``CUDA_VISIBLE_DEVICES`` (indices or UUIDs) if set."""
    count = nvml.nvmlDeviceGetCount()
    wanted = os.environ.get("CUDA_VISIBLE_DEVICES")
    if wanted is None:
        return [(i, nvml.nvmlDeviceGetHandleByIndex(i)) for i in range(count)]
    handles = []
    for position, entry in enumerate(e.strip() for e in wanted.split(",") if e.strip()):
        try:
            if entry.isdigit() and int(entry) < count:
                handles.append((position, nvml.nvmlDeviceGetHandleByIndex(int(entry))))
            elif entry.startswith("GPU-"):
                handles.append((position, nvml.nvmlDeviceGetHandleByUUID(entry)))
        except Exception:  # an entry CUDA would also ignore (MIG, unknown UUID)
            continue
    return handles


class _GpuSampler:
    """Samples utilisation and memory of each visible GPU on a daemon thread."""

    def __init__(self, nvml: Any, interval_s: float) -> None:
        self._nvml = nvml
        self._interval_s = interval_s
        self._handles = _visible_handles(nvml)
        self._names = [_name(nvml, h) for _, h in self._handles]
        self._util: list[list[float]] = [[] for _ in self._handles]
        self._mem: list[list[float]] = [[] for _ in self._handles]
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-gpu-sampler", daemon=True)

    def start(self) -> None:
        self._sample()
        self._thread.start()

    def stop(self) -> tuple[GpuUsage, ...]:
        self._done.set()
        self._thread.join()
        self._sample()
        return tuple(
            GpuUsage(
                index=index,
                name=name,
                util_mean_percent=sum(util) / len(util),
                util_max_percent=max(util),
                mem_mean_mib=sum(mem) / len(mem),
                mem_max_mib=max(mem),
                samples=len(util),
            )
            for (index, _), name, util, mem in zip(
                self._handles, self._names, self._util, self._mem, strict=True
            )
            if util
        )

    def _run(self) -> None:
        while not self._done.wait(self._interval_s):
            self._sample()

    def _sample(self) -> None:
        for k, (_, handle) in enumerate(self._handles):
            try:
                util = float(self._nvml.nvmlDeviceGetUtilizationRates(handle).gpu)
                mem = self._nvml.nvmlDeviceGetMemoryInfo(handle).used / _MIB
            except Exception:  # a GPU that stops answering is left out, not fatal
                continue
            self._util[k].append(util)
            self._mem[k].append(mem)


def _name(nvml: Any, handle: Any) -> str:
    return _str(nvml.nvmlDeviceGetName(handle))


class Monitor:
    """Measures :class:`Usage` between :meth:`start` and :meth:`stop`.

    Use it as a context manager to sample GPUs too: entering initialises NVML (which can
    take a while) before the measured window rather than inside it.

    Args:
        interval_s: seconds between GPU samples.
        gpu: sample GPUs (when nvidia-ml-py and a GPU are present).
        cpu_times: the process's (user + system) CPU seconds; injected for tests.
        clock: wall seconds; injected for tests.
    """

    def __init__(
        self,
        interval_s: float = 0.2,
        *,
        gpu: bool = True,
        cpu_times: Callable[[], float] | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._interval_s = interval_s
        self._gpu = gpu
        self._cpu_times = cpu_times if cpu_times is not None else _process_cpu_s
        self._clock = clock
        self._nvml: Any | None = None
        self._sampler: _GpuSampler | None = None
        self._start: tuple[float, float] | None = None

    def __enter__(self) -> Monitor:
        self._nvml = open_nvml() if self._gpu else None
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._sampler is not None:
            self._sampler.stop()
            self._sampler = None
        if self._nvml is not None:
            self._nvml.nvmlShutdown()
            self._nvml = None

    @property
    def running(self) -> bool:
        """Between :meth:`start` and :meth:`stop`."""
        return self._start is not None

    def start(self) -> None:
        if self._nvml is not None:
            try:
                sampler = _GpuSampler(self._nvml, self._interval_s)
                sampler.start()
            except Exception:  # telemetry is optional: a failing driver means no GPU data
                pass
            else:
                self._sampler = sampler
        self._start = (self._clock(), self._cpu_times())

    def stop(self) -> Usage:
        """The usage since :meth:`start`; CPU in % of one core."""
        if self._start is None:
            raise RuntimeError("Monitor.stop() before start()")
        wall = self._clock() - self._start[0]
        cpu = self._cpu_times() - self._start[1]
        self._start = None
        gpus: tuple[GpuUsage, ...] = ()
        if self._sampler is not None:
            gpus, self._sampler = self._sampler.stop(), None
        usage = Usage(cpu_percent=100.0 * cpu / wall if wall > 0 else None)
        if not gpus:
            return usage
        samples = sum(g.samples for g in gpus)
        return msgspec.structs.replace(
            usage,
            gpu_util_percent=sum(g.util_mean_percent * g.samples for g in gpus) / samples,
            gpu_util_max_percent=max(g.util_max_percent for g in gpus),
            gpu_mem_mib=sum(g.mem_max_mib for g in gpus),
            gpus=gpus,
        )


def _process_cpu_s() -> float:
    times = os.times()  # children_*: children that exited and were waited for
    own = times.user + times.system + times.children_user + times.children_system
    return own + children_cpu_s()


def children_cpu_s() -> float:
    """CPU seconds of this process's live children (Linux; 0 elsewhere)."""
    me = os.getpid()
    try:
        entries = [e for e in os.listdir("/proc") if e.isdigit()]
    except OSError:
        return 0.0
    total = 0.0
    for entry in entries:
        found = proc_stat(f"/proc/{entry}/stat")
        if found is not None and found[1] == me:  # its parent is us
            total += found[2]
    return total


def proc_stat(path: str) -> tuple[str, int, float] | None:
    """``(name, parent pid, user + system CPU seconds)`` from a Linux ``/proc/.../stat``
    file of a process or thread; ``None`` if it is gone."""
    try:
        with open(path) as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return stat[stat.index("(") + 1 : stat.rindex(")")], int(fields[1]), cpu


def machine_info() -> dict[str, Any]:
    """Where a result was measured: host, CPUs, Python, event loop, GPUs, date."""
    from torchweir import __version__
    from torchweir.runtime.loop import uvloop_available

    info: dict[str, Any] = {
        "host": platform.node(),
        "os": f"{platform.system()} {platform.release()}",
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "loop": "uvloop" if uvloop_available() else "asyncio",
        "torchweir": __version__,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    torch = sys.modules.get("torch")  # only if already loaded: importing it costs seconds
    if torch is not None:
        info["torch"] = str(torch.__version__)
    nvml = open_nvml()
    if nvml is not None:
        try:
            info["gpus"] = [_name(nvml, h) for _, h in _visible_handles(nvml)]
            info["nvidia_driver"] = _str(nvml.nvmlSystemGetDriverVersion())
        except Exception:
            pass
        nvml.nvmlShutdown()
    return info


def _str(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
