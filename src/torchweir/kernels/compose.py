"""Kernels that compose or pass data through: ``Identity`` (``Sequential`` follows)."""

from __future__ import annotations

from torchweir.kernels.base import Kernel, Outcome, Payload
from torchweir.kernels.registry import registered

__all__ = ["Identity"]


@registered("Identity")
class Identity(Kernel):
    """``result = data``: a no-op node, and torchpipe's default backend."""

    def forward(self, items: list[Payload]) -> Outcome:
        for item in items:
            item["result"] = item["data"]
        return None
