"""Runtime overhead: identity graphs of 1 and 4 nodes, 256 concurrent async clients.

Measured with the benchmark harness, in one run:

* ``submit``: each client awaits ``rt.submit(x)`` in a loop;
* ``submit_many``: each client awaits ``rt.submit_many`` of 16 items;
* ``naive``: each request awaits one ``asyncio.to_thread`` call per node, which runs that
  node's kernel under the node's ``threading.Lock`` (the "model under a lock" service).

The kernel is trivial (it returns its batch), so the numbers are the runtime's own cost
per request. Usage::

    python benchmarks/overhead.py [--seconds 3] [--clients 256] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import sys
import threading
from pathlib import Path
from typing import Any

import torchweir as tw
from torchweir.bench import RuntimeTarget, table, to_json


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


class ToThreadTarget:
    """The naive service: per request and node, one ``asyncio.to_thread`` call running
    the node's kernel under that node's lock."""

    def __init__(self, nodes: int) -> None:
        self.name = f"naive {nodes}-node"
        self._locks = [threading.Lock() for _ in range(nodes)]

    @staticmethod
    def _node(lock: threading.Lock, x: Any) -> Any:
        with lock:
            return identity([x])[0]

    async def open(self) -> None:
        return None

    async def call(self, items: list[Any]) -> list[Any]:
        out = []
        for x in items:
            for lock in self._locks:
                x = await asyncio.to_thread(self._node, lock, x)
            out.append(x)
        return out

    async def close(self) -> None:
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="timed window per point")
    parser.add_argument("--warmup", type=float, default=0.5, help="untimed seconds first")
    parser.add_argument("--clients", type=int, default=256, help="concurrent async clients")
    parser.add_argument("--chunk", type=int, default=16, help="items per submit_many call")
    parser.add_argument("--json", type=Path, help="write every point as JSON")
    args = parser.parse_args()
    command = shlex.join([Path(sys.executable).name, *sys.argv])
    results = []
    inputs = list(range(1024))
    for nodes in (1, 4):
        graph = chain_graph(nodes)
        settings: dict[str, Any] = {
            "clients": [args.clients],
            "seconds": args.seconds,
            "warmup": args.warmup,
            "progress": False,
            "command": command,
        }
        for target, batch in (
            (RuntimeTarget(graph, name=f"submit {nodes}-node"), 1),
            (RuntimeTarget(graph, name=f"submit_many {nodes}-node"), args.chunk),
            (ToThreadTarget(nodes), 1),
        ):
            results.append(tw.bench.run(target, inputs, request_batch=batch, **settings))
    for result in results:
        print(table(result))
    print()
    print("| graph | mode | req/s | vs naive | TP50 ms | TP99 ms |")
    print("|---|---|---:|---:|---:|---:|")
    for start in (0, 3):
        naive = results[start + 2].points[0].stats.qps
        for result in results[start : start + 3]:
            point = result.points[0]
            mode, graph = point.target.split(" ")
            print(
                f"| {graph} | {mode} | {point.stats.qps:,.0f} | {point.stats.qps / naive:.1f}x "
                f"| {point.stats.p50_ms:.2f} | {point.stats.p99_ms:.2f} |"
            )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text("[" + ",".join(to_json(result).decode() for result in results) + "]\n")


if __name__ == "__main__":
    main()
