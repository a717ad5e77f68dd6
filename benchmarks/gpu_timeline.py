"""What the GPU does while the service runs: busy time of the model's and decode's kernels.

``gpu_pipeline_profile.py --timeline S`` records S seconds of the measured window with
``torch.profiler`` (CUDA activity: every kernel and copy, with its stream) and reduces the
trace here to fractions of wall time:

* ``gpu_busy_pct``: some kernel or copy ran;
* ``model_pct`` and ``decode_pct``: kernels of the model's streams, of decode's streams;
* ``overlap_pct``: both at once (decode and the model sharing the GPU);
* ``copy_pct``: copies between host and device;
* ``top_kernels``: per side (``decode``, ``model``), the kernels that took the most time,
  in ms per second of window, with their launches per second.

Decode's streams are those that ran a resize (``upsample``) or an nvJPEG kernel (names
with ``jpeg``); every other stream with kernels is the model's. nvJPEG's hardware decoder is
an engine of its own, not a kernel, so it does not appear; its colour conversion does.

``api`` adds, thread by thread, the CUDA runtime and driver calls that took the most time
(ms per second of window): where an instance thread waits inside CUDA (a synchronise, a
launch held up by a lock), which a kernel trace cannot show. CUPTI records these calls
for every library in the process, nvJPEG's included.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

DECODE_KERNEL = re.compile(r"upsample|jpeg", re.IGNORECASE)
API_CATEGORIES = ("cuda_runtime", "cuda_driver")

Interval = tuple[float, float]


def merged(intervals: Iterable[Interval]) -> list[Interval]:
    """Overlapping or touching intervals joined, in order."""
    out: list[Interval] = []
    for start, end in sorted(intervals):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def length(intervals: list[Interval]) -> float:
    return sum(end - start for start, end in intervals)


def overlap(a: list[Interval], b: list[Interval]) -> float:
    """Total time covered by both of two merged interval lists."""
    total, i, j = 0.0, 0, 0
    while i < len(a) and j < len(b):
        start, end = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        total += max(0.0, end - start)
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return total


def summarise(events: list[dict[str, Any]]) -> dict[str, Any]:
    """The busy fractions of a Chrome trace's GPU events (``ts``/``dur`` in µs)."""
    kernels = [e for e in events if e.get("cat") == "kernel"]
    copies = [e for e in events if e.get("cat") in ("gpu_memcpy", "gpu_memset")]
    if not kernels:
        return {"kernels": 0}
    decode_streams = {
        e["args"].get("stream") for e in kernels if DECODE_KERNEL.search(e.get("name", ""))
    }

    def spans(selected: Iterable[dict[str, Any]]) -> list[Interval]:
        return merged((e["ts"], e["ts"] + e["dur"]) for e in selected)

    decode = spans(e for e in kernels if e["args"].get("stream") in decode_streams)
    model = spans(e for e in kernels if e["args"].get("stream") not in decode_streams)
    copy = spans(copies)
    every = merged([*decode, *model, *copy])
    window = every[-1][1] - every[0][0]

    def pct(time_us: float) -> float:
        return round(100 * time_us / window, 1)

    return {
        "window_ms": round(window / 1e3, 3),
        "kernels": len(kernels),
        "decode_kernels": sum(e["args"].get("stream") in decode_streams for e in kernels),
        "gpu_busy_pct": pct(length(every)),
        "model_pct": pct(length(model)),
        "decode_pct": pct(length(decode)),
        "overlap_pct": pct(overlap(model, decode)),
        "copy_pct": pct(length(copy)),
        "streams": {
            "decode": len(decode_streams),
            "all": len({e["args"].get("stream") for e in kernels}),
        },
        "top_kernels": {
            side: top_kernels(
                [e for e in kernels if (e["args"].get("stream") in decode_streams) == is_decode],
                window,
            )
            for side, is_decode in (("decode", True), ("model", False))
        },
    }


def top_kernels(kernels: list[dict[str, Any]], window_us: float, top: int = 8) -> dict[str, Any]:
    """The ``top`` kernels by summed duration: name (cut to 60 characters) -> [ms per second
    of window, launches per second]."""
    totals: dict[str, list[float]] = {}
    for e in kernels:
        entry = totals.setdefault(e.get("name", "?")[:60], [0.0, 0])
        entry[0] += e["dur"]
        entry[1] += 1
    seconds = window_us / 1e6
    ranked = sorted(totals.items(), key=lambda kv: -kv[1][0])[:top]
    return {name: [round(us / 1e3 / seconds, 2), round(n / seconds)] for name, (us, n) in ranked}


def api_time(
    events: list[dict[str, Any]],
    window_us: float,
    names: dict[int, str] | None = None,
    top: int = 6,
) -> dict[str, dict[str, float]]:
    """Per thread (named by ``names``, CUPTI's thread id -> name, where known), its ``top`` CUDA API
    calls by total time, in ms per second of ``window_us``, and ``calls``: calls per second."""
    per_thread: dict[Any, dict[str, float]] = {}
    counts: dict[Any, int] = {}
    for e in events:
        if e.get("cat") not in API_CATEGORIES:
            continue
        totals = per_thread.setdefault(e.get("tid"), {})
        totals[e["name"]] = totals.get(e["name"], 0.0) + e["dur"]
        counts[e.get("tid")] = counts.get(e.get("tid"), 0) + 1
    seconds = window_us / 1e6
    out: dict[str, dict[str, float]] = {}
    for tid, totals in sorted(per_thread.items(), key=lambda kv: -sum(kv[1].values())):
        label = (names or {}).get(tid, str(tid)) if isinstance(tid, int) else str(tid)
        if label in out:
            label = f"{label} ({tid})"
        ranked = sorted(totals.items(), key=lambda kv: -kv[1])[:top]
        out[label] = {name: round(us / 1e3 / seconds, 1) for name, us in ranked}
        out[label]["calls"] = round(counts[tid] / seconds)
    return out


class Timeline:
    """``torch.profiler`` over CUDA activity only, started and stopped around a window."""

    def __init__(self) -> None:
        import torch

        activity = torch.profiler.ProfilerActivity.CUDA
        self._profiler = torch.profiler.profile(activities=[activity])

    def start(self) -> None:
        self._profiler.start()

    def stop(self, names: dict[int, str] | None = None) -> dict[str, Any]:
        """The kernel summary, with ``api`` per thread (``names``: CUPTI's thread id ->
        name; CUPTI gives the low 32 bits of the pthread id)."""
        self._profiler.stop()
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "trace.json"
            self._profiler.export_chrome_trace(str(path))
            trace = json.loads(path.read_text())
        events = trace.get("traceEvents", [])
        summary = summarise(events)
        if "window_ms" in summary:
            summary["api"] = api_time(events, summary["window_ms"] * 1e3, names)
        return summary
