"""Runtime overhead: identity graphs of 1 and 4 nodes, 256 concurrent async clients.

Measures, in one run and on one event loop:

* ``submit``: each client awaits ``rt.submit(x)`` in a loop;
* ``submit_many``: each client awaits ``rt.submit_many`` of ``--chunk`` items in a loop;
* ``naive``: each request is one ``asyncio.to_thread`` call that runs the node kernels,
  each under its own ``threading.Lock`` (the "model under a lock" service).

The kernel is trivial (it returns its batch), so the numbers are the runtime's own cost
per request. Usage::

    python benchmarks/overhead.py [--seconds 3] [--clients 256] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import statistics
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import torchweir as tw
from torchweir.runtime.loop import uvloop_available


@tw.kernel(max=256)
def identity(batch: list[Any]) -> list[Any]:
    return batch


def chain_graph(nodes: int) -> tw.Graph:
    g = tw.Graph()
    previous = None
    for i in range(nodes):
        ref = g.node(f"n{i}", identity)
        if previous is not None:
            previous >> ref
        previous = ref
    return g


async def closed_loop(
    clients: int, seconds: float, warmup: float, one_call: Callable[[int], Awaitable[int]]
) -> dict[str, float]:
    """Run ``clients`` loops of ``one_call``; count items done inside the timed window."""
    window = {"open": False, "done": 0}
    latencies: list[float] = []
    stop = False

    async def client(k: int) -> None:
        i = 0
        while not stop:
            t0 = time.perf_counter()
            items = await one_call(k * 1_000_000 + i)
            if window["open"]:
                window["done"] += items
                latencies.append(time.perf_counter() - t0)
            i += 1

    tasks = [asyncio.ensure_future(client(k)) for k in range(clients)]
    await asyncio.sleep(warmup)
    window["open"] = True
    started = time.perf_counter()
    await asyncio.sleep(seconds)
    window["open"] = False
    elapsed = time.perf_counter() - started
    stop = True
    await asyncio.gather(*tasks)
    latencies.sort()
    return {
        "items_per_s": window["done"] / elapsed,
        "calls": len(latencies),
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)],
        "mean_ms": 1000 * statistics.fmean(latencies),
    }


async def measure(nodes: int, mode: str, args: argparse.Namespace) -> dict[str, float]:
    if mode == "naive":
        locks = [threading.Lock() for _ in range(nodes)]

        def serve(x: int) -> int:
            for lock in locks:
                with lock:
                    x = identity([x])[0]
            return x

        async def naive(x: int) -> int:
            assert await asyncio.to_thread(serve, x) == x
            return 1

        return await closed_loop(args.clients, args.seconds, args.warmup, naive)

    async with tw.Runtime(chain_graph(nodes)) as rt:
        if mode == "submit":

            async def one(x: int) -> int:
                assert await rt.submit(x) == x
                return 1

            return await closed_loop(args.clients, args.seconds, args.warmup, one)

        chunk = args.chunk

        async def many(x: int) -> int:
            xs = list(range(x, x + chunk))
            assert await rt.submit_many(xs) == xs
            return chunk

        return await closed_loop(args.clients, args.seconds, args.warmup, many)


def machine() -> dict[str, Any]:
    return {
        "host": platform.node(),
        "cpu_count": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "loop": "uvloop" if uvloop_available() else "asyncio",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }


async def main_async(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    for nodes in (1, 4):
        for mode in ("submit", "submit_many", "naive"):
            row = {"nodes": nodes, "mode": mode, **await measure(nodes, mode, args)}
            rows.append(row)
            print(
                f"  {nodes} node(s) {mode:<12} {row['items_per_s']:>10,.0f} req/s   "
                f"p50 {row['p50_ms']:7.2f} ms   p99 {row['p99_ms']:7.2f} ms",
                flush=True,
            )
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    naive = {r["nodes"]: r["items_per_s"] for r in rows if r["mode"] == "naive"}
    lines = [
        "| graph | mode | req/s | vs naive | p50 ms | p99 ms |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        ratio = r["items_per_s"] / naive[r["nodes"]]
        lines.append(
            f"| {r['nodes']} node{'s' if r['nodes'] > 1 else ''} | {r['mode']} | "
            f"{r['items_per_s']:,.0f} | {ratio:.1f}x | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="timed window per point")
    parser.add_argument("--warmup", type=float, default=0.5, help="untimed seconds first")
    parser.add_argument("--clients", type=int, default=256, help="concurrent async clients")
    parser.add_argument("--chunk", type=int, default=16, help="items per submit_many call")
    parser.add_argument("--json", type=Path, help="write the results here as JSON")
    args = parser.parse_args()
    info = machine()
    print(
        f"torchweir overhead: {args.clients} clients, {args.seconds:g} s per point, "
        f"{info['cpu_count']} CPUs, {info['loop']}"
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
