from __future__ import annotations

import itertools
import sys
import types
from typing import Any

import pytest

from torchweir.bench.system import Monitor, machine_info


def test_cpu_percent_is_process_cpu_time_over_wall_time() -> None:
    wall = iter([10.0, 12.0])
    cpu = iter([5.0, 8.0])
    monitor = Monitor(gpu=False, cpu_times=lambda: next(cpu), clock=lambda: next(wall))
    monitor.start()
    usage = monitor.stop()
    assert usage.cpu_percent == 150.0  # 3 s of CPU in 2 s: one and a half cores
    assert usage.gpu_util_percent is None
    assert usage.gpus == ()


def test_the_real_process_clock_counts_busy_work() -> None:
    with Monitor(gpu=False) as monitor:
        monitor.start()
        sum(i * i for i in range(300_000))
        usage = monitor.stop()
    assert usage.cpu_percent is not None
    assert 5.0 < usage.cpu_percent < 300.0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_cpu_of_live_child_processes_counts_too() -> None:
    import subprocess
    import time

    from torchweir.bench.system import children_cpu_s

    before = children_cpu_s()
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time\nt = time.process_time()\n"
            "while time.process_time() - t < 0.4: pass\ntime.sleep(30)",
        ]
    )
    try:
        deadline = time.monotonic() + 20
        while children_cpu_s() - before < 0.3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert children_cpu_s() - before >= 0.3  # it burnt 0.4 s and is still alive
    finally:
        child.kill()
        child.wait()


def test_without_nvidia_ml_py_gpu_fields_are_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)
    with Monitor() as monitor:
        monitor.start()
        usage = monitor.stop()
    assert (usage.gpu_util_percent, usage.gpu_mem_mib, usage.gpus) == (None, None, ())
    assert "gpus" not in machine_info()


def fake_nvml(util: list[list[int]], used_mib: list[int]) -> Any:
    """A pynvml with len(used_mib) GPUs whose utilisation steps through ``util[i]``."""
    steps = [itertools.chain(u, itertools.repeat(u[-1])) for u in util]
    nvml = types.SimpleNamespace(calls=[])
    nvml.nvmlInit = lambda: nvml.calls.append("init")
    nvml.nvmlShutdown = lambda: nvml.calls.append("shutdown")
    nvml.nvmlDeviceGetCount = lambda: len(used_mib)
    nvml.nvmlDeviceGetHandleByIndex = lambda i: i
    nvml.nvmlDeviceGetName = lambda h: f"GPU{h}".encode()
    nvml.nvmlSystemGetDriverVersion = lambda: "999.1"
    nvml.nvmlDeviceGetUtilizationRates = lambda h: types.SimpleNamespace(gpu=next(steps[h]))
    nvml.nvmlDeviceGetMemoryInfo = lambda h: types.SimpleNamespace(used=used_mib[h] * 2**20)
    return nvml


def test_gpus_are_sampled_per_device_and_combined(monkeypatch: pytest.MonkeyPatch) -> None:
    nvml = fake_nvml([[10, 30], [50, 90]], [1000, 3000])
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    with Monitor(interval_s=3600) as monitor:  # samples at start and stop only
        monitor.start()
        usage = monitor.stop()
    a, b = usage.gpus
    assert (a.name, a.util_mean_percent, a.util_max_percent, a.mem_max_mib) == (
        "GPU0",
        20.0,
        30.0,
        1000.0,
    )
    assert (b.util_mean_percent, b.samples) == (70.0, 2)
    assert usage.gpu_util_percent == 45.0
    assert usage.gpu_util_max_percent == 90.0
    assert usage.gpu_mem_mib == 4000.0
    assert nvml.calls == ["init", "shutdown"]
    info = machine_info()
    assert info["gpus"] == ["GPU0", "GPU1"]
    assert info["nvidia_driver"] == "999.1"


def test_only_the_gpus_cuda_may_use_are_sampled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml([[1], [2], [3]], [1, 2, 3]))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,7")
    with Monitor(interval_s=3600) as monitor:
        monitor.start()
        (gpu,) = monitor.stop().gpus
    assert (gpu.index, gpu.name, gpu.util_mean_percent) == (0, "GPU2", 3.0)
