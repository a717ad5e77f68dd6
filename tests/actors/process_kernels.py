"""Kernels for the process-executor tests, importable by the child processes."""

from __future__ import annotations

import os
import resource
import signal

import cv2
import numpy as np

from torchweir.data import sample_image_bytes
from torchweir.errors import InputError
from torchweir.kernels.base import InstanceContext, ItemKernel, Kernel, Outcome, Payload


class Echo(ItemKernel):
    """``data`` -> ``{"pid": ..., "result": data * 2}`` (bytes count as their length plus
    byte sum); ``"crash"`` kills the process, ``"bad"`` is an InputError, anything else
    not a number a TypeError."""

    max_batch = 8

    def process(self, item: Payload) -> None:
        data = item["data"]
        if data == "crash":
            os.kill(os.getpid(), signal.SIGKILL)
        if data == "bad":
            raise InputError("bad input")
        if isinstance(data, bytes):  # its length and byte sum, to check what arrived
            data = len(data) + sum(data)
        item["result"] = np.full((2, 3), data * 2, dtype=np.float32)
        item["pid"] = os.getpid()


class FailsSetup(Kernel):
    def setup(self, ctx: InstanceContext) -> Kernel:
        raise RuntimeError(f"no model for instance {ctx.index}")

    def forward(self, items: list[Payload]) -> Outcome:
        return None


class PageFaults(Kernel):
    """Decodes and resizes the bundled photos in batches, as a decode node does; its
    ``result`` is the minor page faults per image once warm (0 when freed image buffers
    are reused rather than unmapped and faulted in afresh)."""

    def forward(self, items: list[Payload]) -> Outcome:
        images = sample_image_bytes()

        def batch() -> list[np.ndarray]:
            blobs = []
            for jpeg in images:
                image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
                blobs.append(cv2.dnn.blobFromImage(image, 1.0, (224, 224), swapRB=True))
            return blobs

        for _ in range(3):
            batch()
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(5):
            batch()
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
        items[0]["result"] = faults / (5 * len(images))
        return None


class Rewrites(ItemKernel):
    """Leaves ``data = [data + 100] * 4`` (an array) and ``result = data * 2``, as a chain
    of steps leaves its last step's input in ``data``."""

    max_batch = 8

    def process(self, item: Payload) -> None:
        value = item["data"]
        item["data"] = np.full(4, value + 100, dtype=np.int64)
        item["result"] = value * 2
