"""Writing your own kernels: a function over a batch, and a torchpipe-style dict kernel.

python examples/custom_kernel.py
"""

from __future__ import annotations

from typing import Any

import torchweir as tw


@tw.kernel(max=32)
def normalize_text(batch: list[str]) -> list[Any]:
    """One call per batch; an exception in an item's slot fails only that request."""
    return [
        ValueError("empty text") if not text.strip() else text.strip().lower() for text in batch
    ]


class WordCount(tw.Kernel):
    """Sees whole request dicts: reads ``data``, writes ``result`` and an extra key."""

    max_batch = 32

    def forward(self, items: list[dict[str, Any]]) -> None:
        for item in items:
            words = item["data"].split()
            item["result"] = len(words)
            item["longest"] = max(words, key=len)


tw.register_kernel("WordCount", WordCount)  # now usable as backend = "WordCount" in TOML


def build() -> tw.Graph:
    g = tw.Graph()
    g.node("normalize", normalize_text, instance_num=2) >> g.node("count", "WordCount")
    return g


def main() -> list[Any]:
    with tw.pipe(build()) as pipe:
        requests = [{"data": "  Batches of Requests  "}, {"data": "   "}, {"data": "one"}]
        pipe(requests)
    for request in requests:
        print(request.get("result"), request.get("longest"), request.get("error"))
    return requests


if __name__ == "__main__":
    main()
