"""How long a batch waits between threads, per node: the hops a request makes besides the
kernels' own time.

A batch crosses two thread boundaries per node. The event loop hands it to an instance
thread (``InstanceWorker.run``, a queue put) and the thread takes it up when it next holds
the GIL. Then the thread posts the finished batch back (``call_soon_threadsafe``), and the
loop routes it when it next runs. Under load each crossing can wait for the GIL, up to a
switch interval. ``Hops.install()`` patches ``InstanceWorker`` to time both crossings and
the loop's routing of each batch (``on_done``). Used by ``gpu_pipeline_profile.py --hops``.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from typing import Any

from torchweir.actors import worker as worker_module

__all__ = ["Hops"]


class Hops:
    """Per node, the seconds of each crossing, batch by batch, while ``recording``."""

    PARTS = ("to_thread", "run", "to_loop", "routing")

    def __init__(self) -> None:
        self.recording = False
        self.samples = self._fresh()
        self._put: dict[int, float] = {}
        self._posted: dict[int, float] = {}
        self._lock = threading.Lock()

    def _fresh(self) -> defaultdict[str, dict[str, list[float]]]:
        return defaultdict(lambda: {part: [] for part in self.PARTS})

    def install(self) -> None:
        cls = worker_module.InstanceWorker
        hops = self
        run, execute, poster, init = cls.run, cls._execute, cls._poster, cls.__init__

        def timed_run(self: Any, batch: list[Any]) -> None:
            hops._put[id(batch)] = time.perf_counter()
            run(self, batch)

        def timed_execute(self: Any, kernel: Any, batch: list[Any], wait: bool = True) -> Any:
            began = time.perf_counter()
            put = hops._put.pop(id(batch), None)
            errors = execute(self, kernel, batch, wait)
            if put is not None:
                hops._note(self.ctx.node, "to_thread", began - put)
                hops._note(self.ctx.node, "run", time.perf_counter() - began)
            return errors

        def timed_poster(self: Any, batch: list[Any], errors: Any) -> Any:
            post = poster(self, batch, errors)

            def timed_post() -> None:
                hops._posted[id(batch)] = time.perf_counter()
                post()

            return timed_post

        def timed_init(
            self: Any, kernel: Any, ctx: Any, on_done: Any, *args: Any, **kw: Any
        ) -> None:
            def timed_done(worker: Any, batch: list[Any], errors: Any) -> None:
                began = time.perf_counter()
                posted = hops._posted.pop(id(batch), None)
                on_done(worker, batch, errors)
                if posted is not None:
                    hops._note(ctx.node, "to_loop", began - posted)
                    hops._note(ctx.node, "routing", time.perf_counter() - began)

            init(self, kernel, ctx, timed_done, *args, **kw)

        cls.run = timed_run  # type: ignore[method-assign]
        cls._execute = timed_execute  # type: ignore[method-assign]
        cls._poster = timed_poster  # type: ignore[method-assign]
        cls.__init__ = timed_init  # type: ignore[method-assign]

    def _note(self, node: str, part: str, seconds: float) -> None:
        if self.recording:
            with self._lock:
                self.samples[node][part].append(seconds)

    def take(self) -> dict[str, dict[str, dict[str, float]]]:
        """Per node and crossing: batches, mean, median and 99th percentile in ms; then
        start afresh."""
        with self._lock:
            samples, self.samples = self.samples, self._fresh()
        report: dict[str, dict[str, dict[str, float]]] = {}
        for node, parts in samples.items():
            report[node] = {}
            for part, values in parts.items():
                if not values:
                    continue
                ordered = sorted(values)
                count = len(ordered)
                report[node][part] = {
                    "batches": count,
                    "mean_ms": round(1e3 * sum(ordered) / count, 3),
                    "p50_ms": round(1e3 * ordered[count // 2], 3),
                    "p99_ms": round(1e3 * ordered[min(count - 1, count * 99 // 100)], 3),
                }
        return report
