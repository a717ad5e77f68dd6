"""How close a two-stage pipeline runs to its slowest stage, with the runtime's own costs only.

The mission's bar is that a pipeline runs at close to the speed of its slowest stage. This
measures what the runtime itself loses towards that bar, without a GPU: both stages are
kernels that sleep for a fixed time per batch plus a time per item, letting go of the GIL
the way a CUDA or nvJPEG call does. The defaults are shaped like the ResNet-50 service's
GPU path: ``decode`` (2 instances, batches up to 64) is the slow stage, ``model`` (2
instances, up to 256) the fast one.

In one run, with the benchmark harness and the same closed-loop clients:

* each stage alone, as a one-node graph: its ceiling, runtime costs included;
* the pipeline ``decode -> model``.

It prints the pipeline's req/s, and that rate as a share of the slower stage's measured
ceiling. The sleeps' own ceiling (instances x max / (fixed + per item x max)) is printed
for orientation. Usage::

    python benchmarks/pipeline_efficiency.py [--clients 256] [--seconds 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import torchweir as tw
from torchweir.bench import RuntimeTarget, table, to_json


class Stage:
    """A sleeping stage: ``fixed_ms`` per batch plus ``per_item_us`` per item."""

    def __init__(self, name: str, spec: str, max_batch: int) -> None:
        try:
            instances, fixed_ms, per_item_us = (float(part) for part in spec.split(","))
        except ValueError:
            raise SystemExit(
                f"--{name}: expected INSTANCES,FIXED_MS,PER_ITEM_US, got {spec!r}"
            ) from None
        if instances < 1 or fixed_ms < 0 or per_item_us < 0:
            raise SystemExit(f"--{name}: instances >= 1 and times >= 0, got {spec!r}")
        self.name = name
        self.instances = int(instances)
        self.fixed_s = fixed_ms / 1e3
        self.per_item_s = per_item_us / 1e6
        self.max_batch = max_batch

    def kernel(self) -> Any:
        fixed, per_item = self.fixed_s, self.per_item_s

        @tw.kernel(max=self.max_batch)
        def sleeping(batch: list[Any]) -> list[Any]:
            time.sleep(fixed + per_item * len(batch))
            return batch

        return sleeping

    def add(self, g: tw.Graph) -> Any:
        return g.node(self.name, self.kernel(), instance_num=self.instances, max=self.max_batch)

    def sleep_ceiling(self) -> float:
        """Items/s if every instance ran full batches back to back."""
        return self.instances * self.max_batch / (self.fixed_s + self.per_item_s * self.max_batch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=256, help="concurrent async clients")
    parser.add_argument("--seconds", type=float, default=3.0, help="timed window per point")
    parser.add_argument("--warmup", type=float, default=1.0, help="untimed seconds first")
    parser.add_argument(
        "--decode", default="2,0.5,60", help="INSTANCES,FIXED_MS,PER_ITEM_US (batches <= 64)"
    )
    parser.add_argument(
        "--model", default="2,0.5,30", help="INSTANCES,FIXED_MS,PER_ITEM_US (batches <= 256)"
    )
    parser.add_argument("--json", type=Path, help="write every point as JSON")
    args = parser.parse_args()
    decode, model = Stage("decode", args.decode, 64), Stage("model", args.model, 256)

    alone: dict[str, tw.Graph] = {}
    for stage in (decode, model):
        alone[stage.name] = tw.Graph()
        stage.add(alone[stage.name])
    pipeline = tw.Graph()
    stage_refs = [stage.add(pipeline) for stage in (decode, model)]
    stage_refs[0] >> stage_refs[1]

    targets = [
        RuntimeTarget(alone["decode"], name="decode alone"),
        RuntimeTarget(alone["model"], name="model alone"),
        RuntimeTarget(pipeline, name="decode -> model"),
    ]
    result = tw.bench.run(
        targets,
        list(range(1024)),
        clients=[args.clients],
        seconds=args.seconds,
        warmup=args.warmup,
        progress=False,
        command=shlex.join([Path(sys.executable).name, *sys.argv]),
    )
    print(table(result))
    rates = {point.target: point.stats.qps for point in result.points}
    slowest = min(rates["decode alone"], rates["model alone"])
    print()
    print(
        f"sleep ceilings: decode {decode.sleep_ceiling():,.0f} req/s, "
        f"model {model.sleep_ceiling():,.0f} req/s"
    )
    print(
        f"pipeline {rates['decode -> model']:,.0f} req/s = "
        f"{100 * rates['decode -> model'] / slowest:.1f} % of its slowest stage alone "
        f"({slowest:,.0f} req/s), {args.clients} clients"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(to_json(result).decode() + "\n")


if __name__ == "__main__":
    main()
