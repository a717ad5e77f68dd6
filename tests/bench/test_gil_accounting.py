"""The GIL accounting shim (benchmarks/gil_accounting): built here, it counts a thread's
GIL round trips in torch by rewriting GOT entries, which also works where the interpreter
is linked statically (the GPU machine's python3)."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from benchmarks import gil_accounting

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import json, sys, threading
sys.path.insert(0, sys.argv[1])
import torch
import gil_accounting

done, go = threading.Event(), threading.Event()
def work():
    x = torch.ones(8)
    for _ in range(500):
        y = x + 1  # the op lets go of the GIL, and so does freeing y
    done.set()
    go.wait()
worker = threading.Thread(target=work, name="worker")
before = gil_accounting.snapshot()
worker.start()
done.wait()
after = gil_accounting.snapshot()
go.set()
worker.join()
print(json.dumps(gil_accounting.report(before, after, 1.0)))
"""


def test_without_the_shim_there_is_no_snapshot() -> None:
    assert gil_accounting.snapshot() is None


@pytest.mark.skipif(platform.machine() != "x86_64", reason="the shim rewrites x86-64 GOTs")
@pytest.mark.skipif(shutil.which("cc") is None, reason="needs a C compiler")
def test_the_shim_counts_a_threads_round_trips_in_torch(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    library = tmp_path / "libgil_accounting.so"
    source = ROOT / "benchmarks" / "gil_accounting" / "gil_accounting.c"
    subprocess.run(
        ["cc", "-O2", "-shared", "-fPIC", "-o", str(library), str(source), "-ldl"], check=True
    )
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(ROOT / "benchmarks")],
        env={**os.environ, "LD_PRELOAD": str(library)},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    report = json.loads(out.stdout.splitlines()[-1])
    worker = report["worker"]
    assert worker["releases_per_s"] >= 1000  # at least two per iteration
    assert worker["acquires_per_s"] == worker["releases_per_s"]
