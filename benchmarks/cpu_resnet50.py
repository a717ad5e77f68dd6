"""The seed's ResNet-50 service on this CPU machine, against the seed's naive service.

``torchweir`` runs the service graph (decode node -> ResNet-50 node, batched); ``naive`` is
the seed's section 3.1 service built from the same kernels: decode and preprocess per
request in each client thread, the model called under one ``threading.Lock``. Both use
the same precision (bf16 where the CPU has it, else fp32) and the same bundled photos.

Usage::

    python benchmarks/cpu_resnet50.py --clients 1,10,32 --seconds 10 \
        --json benchmarks/results/cpu_resnet50.json
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

import torchweir as tw
from torchweir.bench import RuntimeTarget, table, to_json
from torchweir.bench.naive import naive_target
from torchweir.bench.resnet50 import cpu_precision, service_graph
from torchweir.data import sample_image_bytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", default="1,10,32")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--max-batch", type=int, default=16)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    graph = service_graph(
        device="cpu",
        decode_instances=max(1, cores - 1),
        model_instances=1,
        max_batch=args.max_batch,
    )
    targets = [RuntimeTarget(graph, name="torchweir"), naive_target(graph)]
    command = shlex.join([Path(sys.executable).name, *sys.argv])
    result = tw.bench.run(
        targets,
        sample_image_bytes(),
        clients=[int(c) for c in args.clients.split(",")],
        seconds=args.seconds,
        warmup=args.warmup,
        progress=False,
        command=command,
    )
    print(table(result))
    print(f"precision {cpu_precision()}, {cores} CPUs")
    for clients in sorted({p.clients for p in result.points if p.clients}):
        ours = next(p for p in result.points if p.target == "torchweir" and p.clients == clients)
        naive = next(p for p in result.points if p.target == "naive" and p.clients == clients)
        print(
            f"{clients:>3} clients: QPS {ours.stats.qps / naive.stats.qps:.2f}x naive, "
            f"TP99 {ours.stats.p99_ms:.0f} ms vs {naive.stats.p99_ms:.0f} ms"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_bytes(to_json(result))


if __name__ == "__main__":
    main()
