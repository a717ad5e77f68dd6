"""CPU decode scaling: one S[DecodeMat,ResizeMat,cvtColorMat,Mat2Tensor] node at 1, 2, 4 instances.

Each point runs ``--clients`` async clients in a closed loop for ``--seconds`` over the
bundled sample photos (``torchweir.data``), resizing to 224 x 224 RGB:

* ``runtime``: each client awaits ``rt.submit(jpeg)`` on a one-node graph with
  ``instance_num`` instances (one thread each);
* ``thread pool``: each client awaits ``preprocess_reference(jpeg)`` (the same OpenCV calls,
  no validation, no runtime) in a ``ThreadPoolExecutor`` with as many workers.

cv2 and torch release the GIL while they work, so both should scale with the instances
up to the number of cores; the gap between the two columns is the runtime's overhead
(scheduling, validation, request dicts). OpenCV's and torch's own thread pools are set
to ``--library-threads`` (1 by default) so that one instance uses one core. Usage::

    python benchmarks/cpu_decode_scaling.py [--seconds 3] [--clients 16] \\
        [--instances 1,2,4] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import datetime
import json
import os
import platform
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import cv2
import torch

import torchweir as tw
from torchweir.data import sample_image_bytes
from torchweir.kernels.cpu import preprocess_reference  # and registers DecodeMat & co.
from torchweir.runtime.loop import uvloop_available

BACKEND = "S[DecodeMat,ResizeMat,cvtColorMat,Mat2Tensor]"
SIZE = 224


async def closed_loop(
    clients: int, seconds: float, warmup: float, one_call: Callable[[int], Awaitable[None]]
) -> dict[str, float]:
    """``clients`` loops of ``one_call``; count the calls finished inside the timed window."""
    done = 0
    window_open = False
    stop = False
    latencies: list[float] = []

    async def client(k: int) -> None:
        nonlocal done
        i = k
        while not stop:
            t0 = time.perf_counter()
            await one_call(i)
            if window_open:
                done += 1
                latencies.append(time.perf_counter() - t0)
            i += 1

    tasks = [asyncio.ensure_future(client(k)) for k in range(clients)]
    await asyncio.sleep(warmup)
    window_open = True
    started = time.perf_counter()
    await asyncio.sleep(seconds)
    window_open = False
    elapsed = time.perf_counter() - started
    stop = True
    await asyncio.gather(*tasks)
    latencies.sort()
    return {
        "img_per_s": done / elapsed,
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)],
    }


def graph(instances: int, max_batch: int) -> tw.Graph:
    g = tw.Graph()
    g.node(
        "decode",
        BACKEND,
        instance_num=instances,
        max=max_batch,
        resize_h=SIZE,
        resize_w=SIZE,
        color="rgb",
    )
    return g


async def measure_runtime(
    instances: int, images: list[bytes], args: argparse.Namespace
) -> dict[str, float]:
    async with tw.Runtime(graph(instances, args.max)) as rt:
        for jpeg in images:  # correctness first: the node must equal the plain OpenCV path
            assert torch.equal(await rt.submit(jpeg), preprocess_reference(jpeg, SIZE, SIZE))

        async def one(i: int) -> None:
            await rt.submit(images[i % len(images)])

        return await closed_loop(args.clients, args.seconds, args.warmup, one)


async def measure_pool(
    instances: int, images: list[bytes], args: argparse.Namespace
) -> dict[str, float]:
    loop = asyncio.get_running_loop()
    with concurrent.futures.ThreadPoolExecutor(instances) as pool:

        async def one(i: int) -> None:
            jpeg = images[i % len(images)]
            await loop.run_in_executor(pool, preprocess_reference, jpeg, SIZE, SIZE)

        return await closed_loop(args.clients, args.seconds, args.warmup, one)


async def main_async(args: argparse.Namespace) -> list[dict[str, Any]]:
    images = sample_image_bytes()
    rows = []
    for instances in args.instances:
        row: dict[str, Any] = {"instances": instances}
        for mode, measure in (("runtime", measure_runtime), ("pool", measure_pool)):
            result = await measure(instances, images, args)
            row.update({f"{mode}_{key}": value for key, value in result.items()})
            print(
                f"  {instances} instance(s) {mode:<8} {result['img_per_s']:>8,.0f} img/s   "
                f"p50 {result['p50_ms']:7.2f} ms   p99 {result['p99_ms']:7.2f} ms",
                flush=True,
            )
        rows.append(row)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    base_rt, base_pool = rows[0]["runtime_img_per_s"], rows[0]["pool_img_per_s"]
    lines = [
        "| instances | runtime img/s | speed-up | p50 ms | thread pool img/s | speed-up "
        "| runtime / pool |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        rt, pool = r["runtime_img_per_s"], r["pool_img_per_s"]
        lines.append(
            f"| {r['instances']} | {rt:,.0f} | {rt / base_rt:.2f}x | {r['runtime_p50_ms']:.2f} "
            f"| {pool:,.0f} | {pool / base_pool:.2f}x | {rt / pool:.2f} |"
        )
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "host": platform.node(),
        "cpu_count": os.cpu_count(),
        "usable_cores": cores,
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "opencv": cv2.__version__,
        "torch": torch.__version__,
        "loop": "uvloop" if uvloop_available() else "asyncio",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="timed window per point")
    parser.add_argument("--warmup", type=float, default=0.5, help="untimed seconds first")
    parser.add_argument("--clients", type=int, default=16, help="concurrent async clients")
    parser.add_argument(
        "--instances",
        type=lambda s: [int(n) for n in s.split(",")],
        default=[1, 2, 4],
        help="comma-separated instance counts (default 1,2,4)",
    )
    parser.add_argument("--max", type=int, default=1, help="the node's max batch (torchpipe: 1)")
    parser.add_argument(
        "--library-threads", type=int, default=1, help="cv2/torch intra-op threads (default 1)"
    )
    parser.add_argument("--json", type=Path, help="write the results here as JSON")
    args = parser.parse_args()
    cv2.setNumThreads(args.library_threads)
    torch.set_num_threads(args.library_threads)
    info = machine()
    print(
        f"torchweir CPU decode scaling: {BACKEND} -> {SIZE}x{SIZE} rgb, {args.clients} clients, "
        f"{args.seconds:g} s per point, {info['usable_cores']} usable cores, {info['loop']}, "
        f"OpenCV {info['opencv']}, torch {info['torch']}"
    )
    rows = tw.run(main_async(args))
    print()
    print(table(rows))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {"machine": info, "args": vars(args) | {"json": str(args.json)}, "rows": rows},
                indent=2,
            )
            + "\n"
        )
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
