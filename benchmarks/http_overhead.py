"""HTTP overhead: the same graph in-process (``RuntimeTarget``) and over loopback HTTP.

For each graph the harness measures the runtime in this process, then a ``torchweir serve``
subprocess serving the same TOML through ``HttpTarget`` (msgpack replies, raw bytes
bodies), at 1 and at 64 closed-loop clients:

* ``identity``: one ``Identity`` node (``max = 256``), 64-byte payloads: the cost of
  HTTP itself (aiohttp server and client, encoding) per request;
* ``decode224``: ``S[DecodeMat,ResizeMat,cvtColorMat,Mat2Tensor]`` to 224 x 224 on the
  bundled photos, 2 instances: real work, and a 150 KB tensor in every reply.

The overhead per request is shown two ways: from throughput at 64 clients,
``1e6 / qps_http - 1e6 / qps_in_process`` (what each request costs the machine more),
and from latency at 1 client, ``p50_http - p50_in_process`` (the round trip an
unloaded caller waits longer). On a small machine the HTTP client (this process) and
the server compete for the same cores, so the first number includes the client's share.
Usage::

    python benchmarks/http_overhead.py [--seconds 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import contextlib
import shlex
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torchweir as tw
from torchweir.bench import BenchResult, HttpTarget, RuntimeTarget, table, to_json
from torchweir.bench.inputs import synthetic
from torchweir.data import sample_image_bytes

GRAPHS = {
    "identity": '[identity]\nbackend = "Identity"\nmax = 256\n',
    "decode224": (
        '[decode]\nbackend = "S[DecodeMat,ResizeMat,cvtColorMat,Mat2Tensor]"\n'
        'resize_h = 224\nresize_w = 224\ncolor = "rgb"\ninstance_num = 2\nmax = 8\n'
    ),
}


@contextlib.contextmanager
def server(config: Path) -> Iterator[str]:
    """``torchweir serve CONFIG`` on a free loopback port; yields its URL."""
    command = [sys.executable, "-m", "torchweir.serve.cli", str(config), "--port", "0"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if " on http://" not in line:
            raise RuntimeError(f"the server did not start: {line!r}")
        yield line.split(" on ")[1].strip()
    finally:
        process.send_signal(signal.SIGTERM)
        if process.wait(60) != 0:
            raise RuntimeError(f"the server exited with {process.returncode}")


def measure(name: str, config: Path, inputs: list[Any], settings: dict[str, Any]) -> list[Any]:
    local = tw.bench.run(RuntimeTarget(config, name=f"{name} in-process"), inputs, **settings)
    with server(config) as url:
        remote = tw.bench.run(HttpTarget(url, name=f"{name} http"), inputs, **settings)
    return [local, remote]


def rows(name: str, local: BenchResult, remote: BenchResult) -> list[str]:
    (l1, l64), (r1, r64) = local.points, remote.points
    out = []
    for clients, lp, rp in ((1, l1, r1), (64, l64, r64)):
        ls, rs = lp.stats, rp.stats
        per_request = 1e6 / rs.qps - 1e6 / ls.qps
        round_trip = (rs.p50_ms - ls.p50_ms) * 1e3
        out.append(
            f"| {name} | {clients} | {ls.qps:,.0f} | {rs.qps:,.0f} | {ls.p50_ms:.2f} "
            f"| {rs.p50_ms:.2f} | {rs.p99_ms:.2f} | {per_request:,.0f} | {round_trip:,.0f} |"
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="timed window per point")
    parser.add_argument("--warmup", type=float, default=0.5, help="untimed seconds first")
    parser.add_argument("--graphs", default="identity,decode224", help="which graphs to run")
    parser.add_argument("--json", type=Path, help="write every point as JSON")
    args = parser.parse_args()
    settings: dict[str, Any] = {
        "clients": [1, 64],
        "seconds": args.seconds,
        "warmup": args.warmup,
        "progress": False,
        "command": shlex.join([Path(sys.executable).name, *sys.argv]),
    }
    inputs = {"identity": synthetic("bytes:64"), "decode224": sample_image_bytes()}
    results: dict[str, list[BenchResult]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.graphs.split(","):
            config = Path(tmp) / f"{name}.toml"
            config.write_text(GRAPHS[name])
            results[name] = measure(name, config, inputs[name], settings)
    for pair in results.values():
        for result in pair:
            print(table(result))
    print()
    print(
        "| graph | clients | in-process req/s | HTTP req/s | in-process p50 ms | HTTP p50 ms "
        "| HTTP p99 ms | µs/request (from req/s) | µs (from p50) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, (local, remote) in results.items():
        print("\n".join(rows(name, local, remote)))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        everything = [r for pair in results.values() for r in pair]
        args.json.write_text("[" + ",".join(to_json(r).decode() for r in everything) + "]\n")


if __name__ == "__main__":
    main()
