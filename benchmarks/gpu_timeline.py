"""What the GPU does while the service runs: busy time of the model's and decode's kernels.

``gpu_pipeline_profile.py --timeline S`` records S seconds of the measured window with
``torch.profiler`` (CUDA activity: every kernel and copy, with its stream) and reduces the
trace here to fractions of wall time:

* ``gpu_busy_pct``: some kernel or copy ran;
* ``model_pct`` and ``decode_pct``: kernels of the model's streams, of decode's streams;
* ``overlap_pct``: both at once (decode and the model sharing the GPU);
* ``copy_pct``: copies between host and device.

Decode's streams are those that ran a resize (``upsample``) or an nvJPEG kernel (names
with ``jpeg``); every other stream with kernels is the model's. nvJPEG's hardware decoder is
an engine of its own, not a kernel, so it does not appear; its colour conversion does.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

DECODE_KERNEL = re.compile(r"upsample|jpeg", re.IGNORECASE)

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
    }


class Timeline:
    """``torch.profiler`` over CUDA activity only, started and stopped around a window."""

    def __init__(self) -> None:
        import torch

        activity = torch.profiler.ProfilerActivity.CUDA
        self._profiler = torch.profiler.profile(activities=[activity])

    def start(self) -> None:
        self._profiler.start()

    def stop(self) -> dict[str, Any]:
        self._profiler.stop()
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "trace.json"
            self._profiler.export_chrome_trace(str(path))
            trace = json.loads(path.read_text())
        return summarise(trace.get("traceEvents", []))
