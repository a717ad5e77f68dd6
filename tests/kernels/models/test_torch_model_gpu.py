"""TorchModel on the GPU (marker ``gpu``): CUDA graphs, fp16, concurrency, failures."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from typing import Any

import pytest

import torchweir as tw

pytestmark = pytest.mark.gpu


def run_all(g: tw.Graph, xs: list[Any], clients: int = 1) -> list[Any]:
    async def main() -> list[Any]:
        async with tw.Runtime(g) as rt:
            if clients == 1:
                return await rt.submit_many(xs, return_exceptions=True)
            out: list[Any] = [None] * len(xs)

            async def client(k: int) -> None:
                for i in range(k, len(xs), clients):
                    out[i] = await rt.submit(xs[i])

            await asyncio.gather(*(client(k) for k in range(clients)))
            return out

    return asyncio.run(main())


def relative_error(out: Any, ref: Any) -> float:
    return float((out.float() - ref.float()).norm() / ref.float().norm())


@pytest.mark.parametrize("precision", ["fp16", "bf16", "fp32"])
def test_cuda_graph_outputs_match_a_float32_reference(precision: str) -> None:
    import torch

    from torchweir.kernels.models.resnet import resnet50

    module = resnet50(seed=0)
    g = tw.Graph()
    g.node(
        "model",
        tw.kernels.TorchModel(
            module,
            precision=precision,
            device="cuda",
            input_shape="3x224x224",
            max_batch=16,
            mean="123.675,116.28,103.53",
            std="58.395,57.12,57.375",
        ),
    )
    torch.manual_seed(1)
    xs = [torch.randint(0, 256, (1, 3, 224, 224), dtype=torch.uint8) for _ in range(20)]
    outs = run_all(g, xs)
    mean = torch.tensor([123.675, 116.28, 103.53]).view(1, 3, 1, 1)
    std = torch.tensor([58.395, 57.12, 57.375]).view(1, 3, 1, 1)
    reference = module.double()
    limit = {"fp32": 1e-3, "fp16": 1e-2, "bf16": 5e-2}[precision]
    for x, out in zip(xs, outs, strict=True):
        assert out.dtype == torch.float32
        assert not out.is_cuda
        with torch.no_grad():
            ref = reference((x.double() - mean) / std)
        assert torch.isfinite(out).all()
        assert relative_error(out, ref) < limit


def test_ten_concurrent_clients_get_consistent_outputs_across_batch_sizes() -> None:
    import torch

    from torchweir.kernels.models.resnet import resnet50

    g = tw.Graph()
    g.node(
        "model",
        tw.kernels.TorchModel(
            resnet50(seed=0), precision="fp16", device="cuda", input_shape="3x224x224", max_batch=32
        ),
        instance_num=2,
        batching_timeout=1,
    )
    torch.manual_seed(2)
    images = [torch.randint(0, 256, (1, 3, 224, 224), dtype=torch.uint8) for _ in range(8)]
    xs = [images[i % 8] for i in range(400)]
    outs = run_all(g, xs, clients=10)
    for i in range(8):
        same = [outs[j] for j in range(i, 400, 8)]
        spread = max(float((o - same[0]).abs().max()) for o in same)
        # different buckets pick different kernels: identical up to fp16 rounding
        assert spread < 2e-2 * float(same[0].abs().max()), spread


class Busy(tw.Kernel):
    """A heavy GPU batch that records when it ran (host time, after syncing)."""

    device = "cuda"

    def __init__(self) -> None:
        self.spans: list[tuple[float, float, int]] = []
        self.lock = threading.Lock()

    def forward(self, items: list[dict[str, Any]]) -> None:
        import torch

        start = time.perf_counter()
        x = torch.randn(4096, 4096, device=torch.cuda.current_device())
        for _ in range(30):
            x = torch.tanh(x @ x)
        torch.cuda.current_stream().synchronize()
        with self.lock:
            self.spans.append((start, time.perf_counter(), threading.get_ident()))
        for item in items:
            item["result"] = item["data"]


def test_two_instances_on_one_gpu_run_at_the_same_time() -> None:
    busy = Busy()
    g = tw.Graph()
    g.node("busy", busy, instance_num=2)
    assert run_all(g, list(range(6)), clients=6) == list(range(6))
    spans = sorted(busy.spans)
    assert len({thread for _, _, thread in spans}) == 2
    overlaps = sum(
        1 for (s1, e1, t1), (s2, e2, t2) in itertools.pairwise(spans) if t1 != t2 and s2 < e1
    )
    assert overlaps >= 1, spans  # the second instance started before the first finished


class OomOnLargeBatches(tw.Kernel):
    device = "cuda"
    max_batch = 16

    def forward(self, items: list[dict[str, Any]]) -> None:
        import torch

        if len(items) > 4:
            torch.empty(10**14, dtype=torch.uint8, device=torch.cuda.current_device())
        for item in items:
            item["result"] = torch.as_tensor(item["data"]).cuda().mul(3).cpu()


def test_cuda_out_of_memory_fails_its_batch_only_and_the_node_stays_healthy() -> None:
    g = tw.Graph()
    g.node("oom", OomOnLargeBatches())
    outs = run_all(g, list(range(10)))
    errors = [o for o in outs if isinstance(o, tw.KernelError)]
    assert errors, "a batch of 10 (> 4) must have failed"
    assert all(
        isinstance(e.__cause__, MemoryError) or "out of memory" in str(e).lower() for e in errors
    )
    assert [int(o) for o in run_all(g, [1, 2])] == [3, 6]


def test_instances_spread_over_every_gpu_and_results_stay_correct() -> None:
    import torch

    from torchweir.kernels.models.resnet import resnet_tiny

    gpus = torch.cuda.device_count()
    if gpus < 2:
        pytest.skip(f"needs 2 GPUs, this machine has {gpus}")
    module = resnet_tiny(seed=3)
    g = tw.Graph()
    g.node(
        "model",
        tw.kernels.TorchModel(module, device="cuda", input_shape="3x32x32", max_batch=8),
        instance_num=2 * gpus,
    )
    torch.manual_seed(4)
    xs = [torch.randint(0, 256, (1, 3, 32, 32), dtype=torch.uint8) for _ in range(200)]
    outs = run_all(g, xs, clients=16)
    reference = module.double()
    for x, out in zip(xs, outs, strict=True):
        with torch.no_grad():
            ref = reference(x.double())
        # fp32, but cuDNN runs fp32 convolutions in TF32 by default: about 1e-3 here
        assert relative_error(out, ref) < 5e-3


class WhereAmI(tw.Kernel):
    """Answers each item with the GPU its instance thread is bound to."""

    device = "cuda"
    max_batch = 4

    def forward(self, items: list[Any]) -> None:
        import torch

        time.sleep(0.002)  # long enough for the batches to spread over the instances
        for item in items:
            item["result"] = torch.cuda.current_device()


def test_gpu_decode_and_model_instances_spread_over_every_gpu_and_agree_with_one_gpu() -> None:
    """Decode on one GPU may feed the model on another: outputs must not depend on where."""
    import torch

    from torchweir.data import sample_image_bytes
    from torchweir.kernels.models.resnet import resnet_tiny

    gpus = torch.cuda.device_count()
    if gpus < 2:
        pytest.skip(f"needs 2 GPUs, this machine has {gpus}")
    probe = tw.Graph()
    probe.node("where", WhereAmI(), instance_num=2 * gpus)
    assert set(run_all(probe, list(range(64)), clients=16)) == set(range(gpus))

    def service(device_id: int | None) -> tw.Graph:
        g = tw.Graph()
        placement = {} if device_id is None else {"device_id": device_id}
        decode = g.node(
            "decode",
            "S[DecodeTensor,ResizeTensor]",
            resize_h=32,
            resize_w=32,
            max=8,
            instance_num=2 * gpus,
            **placement,
        )
        model = tw.kernels.TorchModel(
            resnet_tiny(seed=5), device="cuda", input_shape="3x32x32", max_batch=8
        )
        decode >> g.node("model", model, instance_num=2 * gpus, **placement)
        return g

    images = sample_image_bytes() * 6
    spread = run_all(service(None), images, clients=8)
    one_gpu = run_all(service(0), images, clients=8)
    for a, b in zip(spread, one_gpu, strict=True):
        assert isinstance(a, torch.Tensor), a
        assert relative_error(a, b) < 5e-3  # TF32 convolutions, batches composed differently


def test_inputs_on_the_gpu_are_concatenated_straight_into_the_graphs_input() -> None:
    import torch

    from torchweir.kernels.models.resnet import resnet_tiny

    kernel = tw.kernels.TorchModel(
        resnet_tiny(0),
        precision="fp16",
        device="cuda",
        input_shape="3x32x32",
        max_batch=8,
        mean="123.675,116.28,103.53",
        std="58.395,57.12,57.375",
    )
    stream = torch.cuda.Stream()
    xs = [torch.randint(0, 256, (1, 3, 32, 32), dtype=torch.uint8) for _ in range(5)]
    with torch.cuda.stream(stream):
        instance: Any = kernel.setup(tw.InstanceContext("m", device="cuda:0", stream=stream))
        on_host = [{"data": x} for x in xs]
        on_gpu = [{"data": x.cuda()} for x in xs]
        assert instance.forward(on_host) is None
        assert instance.forward(on_gpu) is None
        graphs = instance.graphs
        first = graphs.stage([item["data"] for item in on_gpu])
        second = graphs.stage([item["data"] for item in reversed(on_gpu)])  # same bucket
        assert first.is_cuda
        assert first.data_ptr() == second.data_ptr()  # both in the static input
        staged = graphs.stage(xs)
        assert not staged.is_cuda
        assert staged.is_pinned()  # copied in by the replay without blocking
        stream.synchronize()
    for host, gpu in zip(on_host, on_gpu, strict=True):
        assert torch.equal(host["result"], gpu["result"])


def test_without_cuda_graphs_host_inputs_are_uploaded_from_pinned_memory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import torch

    from torchweir.kernels.models import batching
    from torchweir.kernels.models.resnet import resnet_tiny

    staged: list[torch.Tensor] = []
    upload = batching.upload_batch

    def spy(samples: list[torch.Tensor]) -> torch.Tensor:
        staged.append(upload(samples))
        return staged[-1]

    monkeypatch.setattr(batching, "upload_batch", spy)
    options: dict[str, Any] = {
        "precision": "fp16",
        "device": "cuda",
        "input_shape": "3x32x32",
        "max_batch": 8,
        "mean": "123.675,116.28,103.53",
        "std": "58.395,57.12,57.375",
    }
    module = resnet_tiny(0)
    eager = tw.kernels.TorchModel(module, cuda_graphs=False, **options)
    graphed = tw.kernels.TorchModel(module, **options)
    stream = torch.cuda.Stream()
    xs = [torch.randint(0, 256, (1, 3, 32, 32), dtype=torch.uint8) for _ in range(6)]
    with torch.cuda.stream(stream):
        ctx = tw.InstanceContext("m", device="cuda:0", stream=stream)
        on_host = [{"data": x} for x in xs]
        on_gpu = [{"data": x.cuda()} for x in xs]
        by_graph = [{"data": x} for x in xs]
        assert eager.setup(ctx).forward(on_host) is None
        assert [s.is_pinned() for s in staged] == [True]  # one batch, pinned
        assert eager.setup(ctx).forward(on_gpu) is None
        assert staged[-1].is_cuda  # concatenated on the GPU, no trip through the host
        graphed.setup(ctx).forward(by_graph)
        stream.synchronize()
    for host, gpu, graph in zip(on_host, on_gpu, by_graph, strict=True):
        assert torch.equal(host["result"], gpu["result"])
        assert relative_error(host["result"], graph["result"]) < 1e-2


@pytest.mark.parametrize("cuda_graphs", [True, False])
def test_host_and_gpu_samples_in_one_batch_give_their_own_outputs(cuda_graphs: bool) -> None:
    # what a model behind a GPU decoder that spilled to CPU decoders receives
    import torch

    from torchweir.kernels.models.resnet import resnet50

    model = tw.kernels.TorchModel(
        resnet50(seed=0),
        precision="fp16",
        device="cuda",
        input_shape="3x224x224",
        max_batch=8,
        cuda_graphs=cuda_graphs,
        mean="123.675,116.28,103.53",
        std="58.395,57.12,57.375",
    )
    torch.manual_seed(2)
    xs = [torch.randint(0, 256, (1, 3, 224, 224), dtype=torch.uint8) for _ in range(6)]
    on_host = [{"data": x} for x in xs]
    mixed = [{"data": x.cuda() if k % 2 else x} for k, x in enumerate(xs)]
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):  # as an instance thread runs it: never the default one
        instance = model.setup(tw.InstanceContext(node="m", device="cuda:0", stream=stream))
        assert instance.forward(on_host) is None
        assert instance.forward(mixed) is None
    stream.synchronize()
    for host, both in zip(on_host, mixed, strict=True):
        assert relative_error(both["result"], host["result"]) < 1e-3


def test_a_gpu_decoder_spilling_to_cpu_processes_feeds_one_model() -> None:
    import torch

    from torchweir.data import sample_image_bytes
    from torchweir.kernels.cpu.reference import preprocess_reference
    from torchweir.kernels.models.resnet import resnet50

    module = resnet50(seed=0)
    g = tw.Graph()
    decode = g.node(
        "decode",
        "S[DecodeTensor,ResizeTensor]",
        resize_h=224,
        resize_w=224,
        max=4,
        spill="S[DecodeMat,ResizeMat,cvtColorMat,Mat2Tensor]",
        spill_instance_num=2,
        spill_executor="process",
        spill_max=2,
        spill_color="rgb",
    )
    net = tw.kernels.TorchModel(
        module,
        precision="fp16",
        device="cuda",
        input_shape="3x224x224",
        max_batch=16,
        mean="123.675,116.28,103.53",
        std="58.395,57.12,57.375",
    )
    decode >> g.node("model", net, instance_num=2)
    images = sample_image_bytes()
    xs = images * 8

    async def main() -> tuple[list[Any], tw.NodeStatistics]:
        async with tw.Runtime(g) as rt:
            outs = await asyncio.gather(*(rt.submit(x) for x in xs))
            stats = next(n for n in rt.statistics().nodes if n.node == "decode")
            return list(outs), stats

    outs, stats = asyncio.run(main())
    assert 0 < stats.spilled < len(xs)
    # each output is the fp32 model's on one of the two decoders' pixels
    mean = torch.tensor([123.675, 116.28, 103.53]).view(1, 3, 1, 1)
    std = torch.tensor([58.395, 57.12, 57.375]).view(1, 3, 1, 1)
    gpu = tw.Graph()
    gpu.node("decode", "S[DecodeTensor,ResizeTensor]", resize_h=224, resize_w=224)
    gpu_pixels = run_all(gpu, images)
    with torch.inference_mode():
        references = [
            [
                module((pixels.cpu().float() - mean) / std)
                for pixels in (preprocess_reference(image, 224, 224, "rgb"), gpu_rows)
            ]
            for image, gpu_rows in zip(images, gpu_pixels, strict=True)
        ]
    for k, out in enumerate(outs):
        errors = [relative_error(out, ref) for ref in references[k % len(images)]]
        assert min(errors) < 1e-2, errors
