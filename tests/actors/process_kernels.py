"""Kernels for the process-executor tests, importable by the child processes."""

from __future__ import annotations

import os
import signal

import numpy as np

from torchweir.errors import InputError
from torchweir.kernels.base import InstanceContext, ItemKernel, Kernel, Outcome, Payload


class Echo(ItemKernel):
    """``data`` -> ``{"pid": ..., "array": data * 2}``; ``"crash"`` kills the process,
    ``"bad"`` is an InputError, anything else not a number a TypeError."""

    max_batch = 8

    def process(self, item: Payload) -> None:
        data = item["data"]
        if data == "crash":
            os.kill(os.getpid(), signal.SIGKILL)
        if data == "bad":
            raise InputError("bad input")
        item["result"] = np.full((2, 3), data * 2, dtype=np.float32)
        item["pid"] = os.getpid()


class FailsSetup(Kernel):
    def setup(self, ctx: InstanceContext) -> Kernel:
        raise RuntimeError(f"no model for instance {ctx.index}")

    def forward(self, items: list[Payload]) -> Outcome:
        return None
