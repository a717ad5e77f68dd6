"""glibc malloc limits: freed image buffers stay mapped once a runtime has started."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

from torchweir.actors import malloc

glibc = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc")

#: A fresh interpreter starts a runtime, then decodes like a decode node and prints the
#: page faults per image (tests.actors.process_kernels.PageFaults).
SCRIPT = """
import asyncio, sys
import torchweir as tw
from tests.actors.process_kernels import PageFaults

async def main():
    g = tw.Graph()
    g.node("n", "Identity")
    async with tw.Runtime(g, keep_freed_buffers=sys.argv[1] == "on"):
        items = [{"data": 0}]
        PageFaults().forward(items)
        print(items[0]["result"])

asyncio.run(main())
"""


def faults_per_image(setting: str, **env: str) -> float:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, setting],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), **env},
        timeout=120,
    )
    return float(done.stdout.split()[-1])


@glibc
def test_a_started_runtime_reuses_freed_image_buffers() -> None:
    assert faults_per_image("on") < 5
    assert faults_per_image("off") > 50  # glibc's defaults: fresh pages for every image


@glibc
def test_limits_set_in_the_environment_are_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", str(1 << 20))
    assert malloc.keep_freed_buffers() is False
    assert faults_per_image("on", MALLOC_MMAP_THRESHOLD_=str(128 << 10)) > 50
