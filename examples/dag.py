"""A DAG: fan-out to two branches that run at their own speed, joined with ``map``.

    python examples/dag.py

``stats`` and ``thumbnail`` both get a copy of the decoded image; ``report`` waits for
both and builds its input from their results. The same graph in TOML is printed too.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import torchweir as tw
from torchweir.data import sample_image_bytes


@tw.kernel(max=16)
def stats(batch: list[np.ndarray]) -> list[dict[str, float]]:
    return [{"mean": float(image.mean()), "std": float(image.std())} for image in batch]


@tw.kernel(max=16)
def shape(batch: list[np.ndarray]) -> list[tuple[int, ...]]:
    return [tuple(image.shape) for image in batch]


class Report(tw.Kernel):
    max_batch = 16

    def forward(self, items: list[dict[str, Any]]) -> None:
        for item in items:
            item["result"] = {**item["data"], "thumbnail": item["thumb"]}


def build() -> tw.Graph:
    g = tw.Graph()
    decode = g.node("decode", "S[DecodeMat,ResizeMat]", resize_h=64, resize_w=64, instance_num=2)
    left = g.node("stats", stats)
    right = g.node("thumbnail", shape)
    report = g.node("report", Report(), map="stats[result:data],thumbnail[result:thumb]")
    decode >> [left, right]
    [left, right] >> report
    return g


async def run() -> list[Any]:
    async with tw.Runtime(build()) as rt:
        return await rt.submit_many(sample_image_bytes()[:3])


def main() -> list[Any]:
    results = tw.run(run())
    for result in results:
        print(result)
    return results


if __name__ == "__main__":
    main()
