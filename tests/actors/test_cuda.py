"""GPU placement logic (runs everywhere) and the CUDA binding (GPU machine only)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

import torchweir as tw
from torchweir.actors import cuda
from torchweir.actors.cuda import CudaBinding, cuda_device_count, place_instances
from torchweir.kernels.base import InstanceContext, Outcome, Payload


def test_instances_spread_round_robin_over_the_visible_gpus() -> None:
    assert place_instances(4, None, 2) == [0, 1, 0, 1]
    assert place_instances(3, -1, 1) == [0, 0, 0]  # torchpipe's "unset" device_id
    assert place_instances(3, 1, 2) == [1, 1, 1]


def test_placement_names_what_is_missing() -> None:
    with pytest.raises(tw.ConfigError, match="needs a CUDA GPU, and none is visible"):
        place_instances(1, None, 0)
    with pytest.raises(tw.ConfigError, match=r"device_id 2 is not visible \(2 GPU\(s\): 0\.\.1\)"):
        place_instances(1, 2, 2)


def test_importing_torchweir_asked_for_32_hardware_queues_unless_told_otherwise() -> None:
    # the test process imported torchweir before any CUDA call; CI sets no value itself
    import os

    assert os.environ.get(cuda.HARDWARE_QUEUES)


def test_hardware_queues_respect_the_user_and_an_initialised_cuda(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import os
    import sys
    import types

    monkeypatch.setenv(cuda.HARDWARE_QUEUES, "4")
    cuda.widen_hardware_queues()
    assert os.environ[cuda.HARDWARE_QUEUES] == "4"  # the user's choice stands
    assert cuda.hardware_queue_warning() is None

    monkeypatch.delenv(cuda.HARDWARE_QUEUES)
    initialised = types.SimpleNamespace(cuda=types.SimpleNamespace(is_initialized=lambda: True))
    monkeypatch.setitem(sys.modules, "torch", initialised)
    cuda.widen_hardware_queues()
    assert cuda.HARDWARE_QUEUES not in os.environ  # too late: the context has its queues
    why = cuda.hardware_queue_warning()
    assert why is not None
    assert "CUDA_DEVICE_MAX_CONNECTIONS=32" in why

    fresh = types.SimpleNamespace(cuda=types.SimpleNamespace(is_initialized=lambda: False))
    monkeypatch.setitem(sys.modules, "torch", fresh)
    cuda.widen_hardware_queues()
    assert os.environ[cuda.HARDWARE_QUEUES] == "32"


def test_a_bad_completion_mode_is_a_config_error() -> None:
    with pytest.raises(tw.ConfigError, match="completion must be one of"):
        CudaBinding("poll")
    with pytest.raises(tw.ConfigError, match="stream_priority must be one of"):
        CudaBinding("event", "urgent")


@pytest.mark.parametrize(("key", "value"), [("completion", "poll"), ("stream_priority", "urgent")])
def test_bad_gpu_settings_fail_the_build_naming_node_and_key_even_without_a_gpu(
    key: str, value: str
) -> None:
    g = tw.Graph()
    g.node("decode", "Torch[Identity]", **{key: value})
    with pytest.raises(tw.ConfigError, match=f"node 'decode', key '{key}'"):
        asyncio.run(tw.Runtime(g).start())


class NeedsCuda(tw.Kernel):
    device = "cuda"

    def forward(self, items: list[Payload]) -> Outcome:
        for item in items:
            item["result"] = item["data"]
        return None


@pytest.mark.skipif(cuda_device_count() > 0, reason="this machine has a GPU")
def test_without_a_gpu_torch_wrappers_run_on_the_cpu_and_cuda_kernels_fail_to_build() -> None:
    g = tw.Graph()
    g.node("decode", "Torch[Identity]")

    async def main() -> Any:
        async with tw.Runtime(g) as rt:
            return await rt.submit(5)

    assert asyncio.run(main()) == 5
    g2 = tw.Graph()
    g2.node("model", NeedsCuda())
    with pytest.raises(tw.ConfigError, match="node 'model', key 'device_id': needs a CUDA GPU"):
        asyncio.run(tw.Runtime(g2).start())


class StreamProbe(tw.Kernel):
    """Records, per batch, the instance's device, stream and thread."""

    device = "cuda"
    max_batch = 4

    def __init__(self) -> None:
        self.seen: list[tuple[str, int, int]] = []
        self.priorities: set[int] = set()
        self.lock = threading.Lock()

    def forward(self, items: list[Payload]) -> Outcome:
        import torch

        stream = torch.cuda.current_stream()
        with self.lock:
            self.seen.append((str(stream.device), stream.cuda_stream, threading.get_ident()))
            self.priorities.add(stream.priority)
        for item in items:
            item["result"] = (torch.as_tensor(item["data"], device=stream.device) * 2).cpu()
        return None


@pytest.mark.gpu
@pytest.mark.parametrize("completion", ["event", "spin", "callback"])
def test_each_instance_runs_on_its_own_non_default_stream(completion: str) -> None:
    import torch

    probe = StreamProbe()
    g = tw.Graph()
    g.node("gpu", probe, instance_num=3, completion=completion, max=4)

    async def main() -> list[Any]:
        async with tw.Runtime(g) as rt:
            return await asyncio.gather(*(rt.submit(i) for i in range(200)))

    results = asyncio.run(main())
    assert [int(r) for r in results] == [2 * i for i in range(200)]
    streams = {s for _, s, _ in probe.seen}
    threads = {t for _, _, t in probe.seen}
    assert len(threads) == 3
    assert len(streams) == 3
    assert torch.cuda.default_stream().cuda_stream not in streams
    gpus = cuda_device_count()
    assert {d for d, _, _ in probe.seen} == {f"cuda:{i}" for i in range(min(gpus, 3))}
    assert probe.priorities == {0}


@pytest.mark.gpu
def test_a_high_priority_node_runs_on_high_priority_streams() -> None:
    probe = StreamProbe()
    g = tw.Graph()
    g.node("gpu", probe, instance_num=2, stream_priority="high", max=4)

    async def main() -> list[Any]:
        async with tw.Runtime(g) as rt:
            return await asyncio.gather(*(rt.submit(i) for i in range(20)))

    assert [int(r) for r in asyncio.run(main())] == [2 * i for i in range(20)]
    assert probe.priorities == {-1}


@pytest.mark.gpu
def test_the_host_callback_posts_only_after_the_stream_work() -> None:
    import torch

    done = threading.Event()
    order: list[str] = []
    binding = CudaBinding("callback")
    ctx = binding.enter(InstanceContext("n", device="cuda:0"))
    x = torch.randn(4096, 4096, device="cuda:0")
    with binding.batch_scope(ctx):
        for _ in range(20):
            x = x @ x / 4096
        marker = torch.cuda.Event()
        marker.record(ctx.stream)

    def callback() -> None:
        order.append("callback")
        order.append("finished" if marker.query() else "still running")
        done.set()

    binding.complete_later(ctx, callback)
    assert done.wait(30)
    assert order == ["callback", "finished"]


@pytest.mark.gpu
@pytest.mark.parametrize(("completion", "spins"), [("event", False), ("spin", True)])
def test_event_completion_sleeps_while_the_gpu_works_and_spin_does_not(
    completion: str, spins: bool
) -> None:
    import time

    import torch

    binding = CudaBinding(completion)
    ctx = binding.enter(InstanceContext("n", device="cuda:0"))
    x = torch.randn(8192, 8192, device="cuda:0")
    with binding.batch_scope(ctx):
        torch.cuda.synchronize()
        for _ in range(100):  # a few hundred milliseconds of GPU work
            x = x @ x / 8192
    wall, cpu = time.perf_counter(), time.thread_time()
    binding.complete(ctx)
    wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
    assert wall > 0.05, "the GPU work finished too soon to tell"
    assert (cpu > 0.5 * wall) is spins, f"{cpu:.3f} s of CPU over {wall:.3f} s"
