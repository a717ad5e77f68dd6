"""CPU decode instances scale on cores: ``S[DecodeMat,ResizeMat,cvtColorMat,Mat2Tensor]``.

One node (224 x 224 RGB) at ``instance_num`` = 1, 2, 4, ..., fed by 16 closed-loop clients
through the harness, against the same work in a plain thread pool of as many threads
(``preprocess_reference``), so the runtime's own cost is visible. cv2 releases the GIL
while it decodes and resizes, so N instances should give about N times one instance, up
to the number of cores.

With ``--executor process`` the instances are child processes (batches of up to 8, as
the GPU service's CPU-decode variant has them), and the baseline is the same work in as
many plain processes: the cores' own ceiling, with nothing in between. Usage::

    python benchmarks/cpu_decode_scaling.py --instances 1,2,4 --seconds 5 \
        --json benchmarks/results/cpu_decode_scaling-cpu2.json
    python benchmarks/cpu_decode_scaling.py --executor process --instances 2 --clients 64
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path
from typing import Any

import torchweir as tw
from torchweir.bench import RuntimeTarget, ThreadTarget, table, to_json
from torchweir.data import sample_image_bytes
from torchweir.kernels.cpu import preprocess_reference


def decode_graph(instances: int, executor: str = "thread") -> tw.Graph:
    g = tw.Graph()
    g.node(
        "decode",
        "S[DecodeMat,ResizeMat,cvtColorMat,Mat2Tensor]",
        resize_h=224,
        resize_w=224,
        color="rgb",
        instance_num=instances,
        prefetch=1,
        executor=executor,
        max=8 if executor == "process" else 1,
    )
    return g


def reference(jpeg: bytes) -> Any:
    return preprocess_reference(jpeg, 224, 224, "rgb")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", default="1,2,4")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--executor", default="thread", choices=("thread", "process"))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    counts = [int(n) for n in args.instances.split(",")]
    in_processes = args.executor == "process"
    targets: list[Any] = []
    for n in counts:
        targets.append(RuntimeTarget(decode_graph(n, args.executor), name=f"torchweir x{n}"))
        if not in_processes:
            targets.append(ThreadTarget(reference, name=f"thread pool x{n}", threads=n))
    result = tw.bench.run(
        targets,
        sample_image_bytes(),
        clients=[args.clients],
        seconds=args.seconds,
        warmup=args.warmup,
        progress=False,
        command=shlex.join([Path(sys.executable).name, *sys.argv]),
    )
    print(table(result))
    rates = {p.target: p.stats.qps for p in result.points}
    baseline = "plain processes" if in_processes else "thread pool"
    if in_processes:
        from gpu_resnet50 import cpu_decode_ceiling_processes

        for n in counts:
            rates[f"{baseline} x{n}"] = cpu_decode_ceiling_processes(
                sample_image_bytes(), n, args.seconds
            )
    print(f"\n{os.cpu_count()} CPUs, {args.clients} clients, {args.executor} instances")
    print(f"| instances | torchweir img/s | speed-up | {baseline} img/s | torchweir / baseline |")
    print("|---:|---:|---:|---:|---:|")
    one = rates[f"torchweir x{counts[0]}"]
    for n in counts:
        ours, base = rates[f"torchweir x{n}"], rates[f"{baseline} x{n}"]
        print(f"| {n} | {ours:,.0f} | {ours / one:.2f}x | {base:,.0f} | {ours / base:.2f} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_bytes(to_json(result))


if __name__ == "__main__":
    main()
