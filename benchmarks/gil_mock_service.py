"""A CPU mock of the GPU service, to price GIL round trips without a GPU.

Two nodes as in the ResNet-50 service (``decode``: 2 instances, ``max`` 64; ``model``: 2
instances, ``max`` 256), whose kernels wait without the GIL for the stage times measured
on the H200 (decode 1 ms + 75 µs per image, model 1.5 ms + 50 µs per image). Before each
wait a decode batch makes and drops ``--tensors`` small torch tensors per image and lets go
of the GIL ``--releases`` more times (``time.sleep(0)``). 256 closed-loop clients, the
profile's own (``gpu_pipeline_profile.drive``). Run it under the ``gil_accounting`` shim to
see which thread waits.

Usage::

    LD_PRELOAD=/tmp/libgil_accounting.so python benchmarks/gil_mock_service.py \\
        --tensors 0,6 --releases 0,40
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import torch

import torchweir as tw
from gpu_pipeline_profile import drive
from torchweir.kernels.base import Kernel, Outcome, Payload
from torchweir.kernels.registry import register_kernel


class MockStage(Kernel):
    """Waits like a GPU stage; makes tensors and GIL round trips like Python around it."""

    def __init__(
        self,
        fixed_ms: float,
        per_item_ms: float,
        tensors: int = 0,
        releases: int = 0,
        max_batch: int = 64,
    ) -> None:
        self.fixed_s, self.per_item_s = fixed_ms / 1e3, per_item_ms / 1e3
        self.tensors, self.releases, self.max_batch = tensors, releases, max_batch

    def forward(self, items: list[Payload]) -> Outcome:
        made = [torch.zeros(3) for _ in range(self.tensors * len(items))]
        del made  # each free is a GIL round trip
        for _ in range(self.releases):
            time.sleep(0)
        time.sleep(self.fixed_s + self.per_item_s * len(items))
        for item in items:
            item["result"] = item["data"]
        return None


register_kernel("MockStage", MockStage)


async def one(tensors: int, releases: int, args: argparse.Namespace) -> dict[str, Any]:
    g = tw.Graph()
    decode = g.node(
        "decode", "MockStage", fixed_ms=1.0, per_item_ms=0.075, tensors=tensors,
        releases=releases, max=64, instance_num=2,
    )  # fmt: skip
    decode >> g.node("model", "MockStage", fixed_ms=1.5, per_item_ms=0.05, max=256, instance_num=2)
    runtime = tw.Runtime(g.spec(), switch_interval=args.switch_interval)
    await runtime.start()
    try:
        rate, report = await drive(runtime, [b"x"] * 16, args.clients, args.warmup, args.seconds)
    finally:
        await runtime.aclose()
    report["req_per_s"] = rate
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tensors", default="0,6", help="tensors made per image, a list")
    parser.add_argument("--releases", default="0", help="GIL releases per decode batch, a list")
    parser.add_argument("--switch-interval", type=float, default=0.0005)
    parser.add_argument("--clients", type=int, default=256)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    for tensors, releases in itertools.product(
        [int(v) for v in args.tensors.split(",")], [int(v) for v in args.releases.split(",")]
    ):
        report = asyncio.run(one(tensors, releases, args))
        decode = report["nodes"]["decode"]
        print(
            f"tensors/image {tensors}, releases/batch {releases}: "
            f"{report['req_per_s']:,.0f} req/s; decode batch {decode['mean_batch']}, "
            f"run {decode['mean_run_ms']} ms, busy {decode['busy_instance_pct']} %"
        )
        for thread, gil in report.get("gil", {}).items():
            print(f"  GIL {thread}: {gil}")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
