"""What one torch call costs an instance thread when another thread is busy in Python.

A torch call that lets go of the GIL must win it back when it returns. Beside a thread
that runs pure Python (an event loop under load), the caller then waits until that
thread is made to give the GIL up: up to a switch interval (``sys.setswitchinterval``).
Calls that keep the GIL cost the same either way. For each call below: microseconds per
call alone, and beside a thread spinning in pure Python.

Usage::

    python benchmarks/gil_release_probe.py --device cuda --switch-interval 0.0005
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F


def calls(device: str) -> dict[str, Callable[[], Any]]:
    image = torch.zeros(1, 3, 50, 50, device=device)
    batch = torch.zeros(8, 3, 60, 60, device=device)
    return {
        "x.shape, x.dtype, x.device": lambda: (image.shape, image.dtype, image.device),
        "x[None]": lambda: image[None],
        "x[1, :, :50, :50]": lambda: batch[1, :, :50, :50],
        "x.view(...)": lambda: image.view(3, 50, 50),
        "torch.frombuffer": lambda: torch.frombuffer(bytearray(64), dtype=torch.uint8),
        "torch.split(x, 1)": lambda: torch.split(batch, 1),
        "torch.cat": lambda: torch.cat([image, image]),
        "x.float()": lambda: batch.half().float(),
        "F.interpolate": lambda: F.interpolate(image, size=(24, 24), mode="bilinear"),
    }


def per_call_us(fn: Callable[[], Any], repeats: int, device: str) -> float:
    began = time.perf_counter()
    for _ in range(repeats):
        fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return 1e6 * (time.perf_counter() - began) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--switch-interval", type=float, default=0.0005)
    args = parser.parse_args()
    sys.setswitchinterval(args.switch_interval)
    print(f"# {' '.join(sys.argv)}")
    print(f"switch interval {1e3 * sys.getswitchinterval():.2f} ms; torch {torch.__version__}")
    print(f"{'call':30s} {'alone us':>10s} {'beside busy Python us':>22s}")
    for name, fn in calls(args.device).items():
        for _ in range(3):  # first calls allocate, load kernels
            fn()
        alone = per_call_us(fn, args.repeats, args.device)
        stop = threading.Event()

        def spin(stop: threading.Event = stop) -> None:
            while not stop.is_set():
                pass

        spinner = threading.Thread(target=spin)
        spinner.start()
        time.sleep(0.01)
        beside = per_call_us(fn, args.repeats, args.device)
        stop.set()
        spinner.join()
        print(f"{name:30s} {alone:10.1f} {beside:22.1f}", flush=True)


if __name__ == "__main__":
    main()
