"""Kernels for graph tests, importable from TOML as ``tests.dag_kernels:Name``."""

from __future__ import annotations

import threading
from typing import Any

import torchweir as tw
from torchweir.kernels.base import Outcome, Payload


class Tag(tw.Kernel):
    """``result = data + suffix``; fails items whose data contains ``fail_on``."""

    def __init__(self, suffix: str = "", fail_on: str = "", max_batch: int = 8) -> None:
        self.suffix = suffix
        self.fail_on = fail_on
        self.max_batch = max_batch

    def forward(self, items: list[Payload]) -> Outcome:
        errors: list[BaseException | None] = []
        for item in items:
            data = item["data"]
            if self.fail_on and self.fail_on in str(data):
                errors.append(ValueError(f"{self.suffix} refuses {data!r}"))
            else:
                item["result"] = f"{data}{self.suffix}"
                errors.append(None)
        return errors


class ItemTag(tw.kernels.ItemKernel):
    """:class:`Tag` as an item kernel, so ``Sequential`` runs it item by item."""

    def __init__(self, suffix: str = "", fail_on: str = "") -> None:
        self.suffix = suffix
        self.fail_on = fail_on

    def process(self, item: Payload) -> None:
        data = item["data"]
        if self.fail_on and self.fail_on in str(data):
            raise ValueError(f"{self.suffix} refuses {data!r}")
        item["result"] = f"{data}{self.suffix}"


class ItemSilent(tw.kernels.ItemKernel):
    """:class:`Silent` as an item kernel."""

    def process(self, item: Payload) -> None:
        return None


class Concat(tw.Kernel):
    """For joins: ``result = data + "+" + other``."""

    max_batch = 8

    def forward(self, items: list[Payload]) -> Outcome:
        for item in items:
            item["result"] = f"{item['data']}+{item['other']}"
        return None


class Silent(tw.Kernel):
    """Leaves no result: what torchpipe backends do on a failed decode."""

    def forward(self, items: list[Payload]) -> Outcome:
        return None


class Ordered(tw.Kernel):
    """Tags, but waits until ``after`` has been set (controls which branch finishes last)."""

    def __init__(
        self,
        suffix: str,
        after: threading.Event | None = None,
        signal: threading.Event | None = None,
    ) -> None:
        self.suffix = suffix
        self.after = after
        self.signal = signal
        self.max_batch = 8

    def forward(self, items: list[Payload]) -> Outcome:
        if self.after is not None:
            assert self.after.wait(10)
        for item in items:
            item["result"] = f"{item['data']}{self.suffix}"
        if self.signal is not None:
            self.signal.set()
        return None


def data_is_skip(payload: dict[str, Any]) -> tw.kernels.filters.Status:
    """A custom filter: skip the node when the parent's result starts with 'skip', else
    behave like the default (``swap``)."""
    filters = tw.kernels.filters
    if str(payload.get("result", "")).startswith("skip"):
        return filters.Status.SKIP
    return filters.swap(payload)
