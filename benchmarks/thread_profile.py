"""Where a busy torchweir process spends its time, thread by thread.

py-spy hung on the GPU machine, so this samples from inside the process:

* CPU seconds of every OS thread (``/proc/self/task``), Python or not (CUDA's and
  nvJPEG's threads too), over the measured window;
* Python stacks of every thread (``sys._current_frames``) every few milliseconds,
  reported as the innermost frames where each thread was found;
* the event loop's lag: how long a callback posted from another thread waits before it
  runs. A saturated loop, not a slow stage, shows here first;
* the GIL's wait: a probe thread lets go of the GIL (``time.sleep(0)``) every millisecond
  and times how long winning it back takes. Every torch op and every nvJPEG call releases
  the GIL and pays this wait on its way back, so a long wait multiplies by the ops.

Used by ``gpu_pipeline_profile.py``; Linux only.
"""

from __future__ import annotations

import asyncio
import collections
import os
import sys
import threading
import time
from typing import Any

from torchweir.bench.system import proc_stat

__all__ = ["ThreadProfile"]


def _thread_cpu() -> dict[int, tuple[str, float]]:
    """``{tid: (name, cpu seconds)}`` for every thread of this process."""
    found = {}
    for tid in os.listdir("/proc/self/task"):
        stat = proc_stat(f"/proc/self/task/{tid}/stat")
        if stat is not None:
            found[int(tid)] = (stat[0], stat[2])
    return found


def _where(frame: Any, depth: int) -> str:
    parts = []
    while frame is not None and len(parts) < depth:
        code = frame.f_code
        parts.append(f"{code.co_name}({os.path.basename(code.co_filename)}:{frame.f_lineno})")
        frame = frame.f_back
    return " < ".join(parts)


class ThreadProfile:
    """Samples between :meth:`start` and :meth:`stop`; :meth:`stop` returns the report."""

    def __init__(self, interval_s: float = 0.002, depth: int = 3) -> None:
        self.interval_s = interval_s
        self.depth = depth
        self._stacks: dict[int, collections.Counter[str]] = collections.defaultdict(
            collections.Counter
        )
        self._lags: list[float] = []
        self._gil_waits: list[float] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._probe: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._loop = loop
        self._cpu0 = _thread_cpu()
        self._t0 = time.perf_counter()
        self._thread = threading.Thread(target=self._sample, name="profiler", daemon=True)
        self._thread.start()
        self._probe = threading.Thread(target=self._probe_gil, name="gil-probe", daemon=True)
        self._probe.start()

    def _probe_gil(self) -> None:
        while not self._stop.wait(0.001):
            began = time.perf_counter()
            time.sleep(0)  # releases the GIL; the time is the wait to win it back
            self._gil_waits.append(time.perf_counter() - began)

    def _sample(self) -> None:
        me = threading.get_ident()
        next_probe = 0.0
        while not self._stop.wait(self.interval_s):
            for ident, frame in sys._current_frames().items():
                if ident != me:
                    self._stacks[ident][_where(frame, self.depth)] += 1
            now = time.perf_counter()
            if self._loop is not None and now >= next_probe:
                next_probe = now + 0.005
                self._loop.call_soon_threadsafe(self._lag, now)

    def _lag(self, posted: float) -> None:
        self._lags.append(time.perf_counter() - posted)

    def stop(self, top: int = 6) -> dict[str, Any]:
        self._stop.set()
        for thread in (self._thread, self._probe):
            if thread is not None:
                thread.join()
        wall = time.perf_counter() - self._t0
        cpu1 = _thread_cpu()
        names = {t.native_id: t.name for t in threading.enumerate()}
        idents = {t.ident: t.native_id for t in threading.enumerate()}
        threads = []
        for tid, (comm, cpu) in cpu1.items():
            used = cpu - self._cpu0.get(tid, (comm, 0.0))[1]
            name = names.get(tid, comm)
            threads.append({"thread": name, "tid": tid, "cpu_pct": 100 * used / wall})
        threads.sort(key=lambda t: -t["cpu_pct"])
        stacks = {}
        for ident, counter in self._stacks.items():
            total = sum(counter.values())
            name = names.get(idents.get(ident, -1), str(ident))
            stacks[name] = [
                {"pct": round(100 * n / total, 1), "where": where}
                for where, n in counter.most_common(top)
            ]
        return {
            "gil_wait_ms": _quantiles(self._gil_waits),
            "wall_s": wall,
            "process_cpu_pct": sum(t["cpu_pct"] for t in threads),
            "threads": [t for t in threads if t["cpu_pct"] >= 1.0],
            "stacks": stacks,
            "loop_lag_ms": _quantiles(self._lags),
        }


def _quantiles(seconds: list[float]) -> dict[str, Any]:
    """Probe count, p50, p99 and mean of ``seconds``, in milliseconds."""
    ordered = sorted(seconds)
    n = len(ordered)
    return {
        "probes": n,
        "p50": 1e3 * ordered[n // 2] if n else None,
        "p99": 1e3 * ordered[int(n * 0.99)] if n else None,
        "mean": 1e3 * sum(ordered) / n if n else None,
    }


def print_report(report: dict[str, Any]) -> None:
    print(
        f"  process CPU {report['process_cpu_pct']:.0f} %; loop lag (ms) "
        + ", ".join(
            f"{k} {v:.2f}" for k, v in report["loop_lag_ms"].items() if isinstance(v, float)
        )
        + "; GIL wait (ms) "
        + ", ".join(
            f"{k} {v:.3f}" for k, v in report["gil_wait_ms"].items() if isinstance(v, float)
        )
    )
    for thread in report["threads"]:
        print(f"  {thread['cpu_pct']:6.1f} % CPU  {thread['thread']}")
    for name, rows in report["stacks"].items():
        print(f"  stacks of {name}:")
        for row in rows:
            print(f"    {row['pct']:5.1f} %  {row['where']}")
