"""The built-in benchmark: the seed's ResNet-50 service, from JPEG bytes to logits.

``torchweir bench`` with no config runs it on the bundled photos: on a GPU machine with
fp16 CUDA graphs, on a CPU machine in fp32. Two variants of the decode stage exist:
``cpu`` (``S[DecodeMat,ResizeMat,cvtColorMat,Mat2Tensor]`` on instance threads) and
``gpu`` (``S[DecodeTensor,ResizeTensor]``, nvJPEG). The model is defined in the project
with seeded random weights; nothing is downloaded.
"""

from __future__ import annotations

import os
from typing import Any

from torchweir.graphs.builder import Graph
from torchweir.kernels.models.torch_model import TorchModel

__all__ = ["MEAN", "STD", "service_graph"]

MEAN = "123.675, 116.28, 103.53"
STD = "58.395, 57.120, 57.375"
CPU_DECODE = "S[DecodeMat,ResizeMat,cvtColorMat,Mat2Tensor]"


def service_graph(
    *,
    device: str | None = None,
    decode: str = "cpu",
    decode_instances: int | None = None,
    decode_executor: str | None = None,
    decode_spill: int = 0,
    model_instances: int | None = None,
    max_batch: int | None = None,
    precision: str | None = None,
    compile: str = "",
    compile_dynamic: bool = False,
    buckets: str = "",
    seed: int = 0,
    model: Any = None,
    model_timeout_ms: float = 0,
    model_prefetch: int = 0,
) -> Graph:
    """Two nodes: ``decode`` (JPEG -> 1x3x224x224 uint8 RGB) -> ``resnet50`` (logits).

    Defaults follow the machine: on a GPU, fp16 CUDA graphs, batches up to 256 and two
    model instances; on a CPU, bf16 where supported (else fp32), batches up to 16 and one
    model instance. CPU decode
    gets one instance per core left after the event loop and the model's threads. The
    model takes what is queued without waiting (``model_timeout_ms=2`` doubled its batch
    size at 256 clients on an H200 without raising throughput, and cost 25 % at 10).

    ``decode_spill`` gives GPU decode a spill pool of that many CPU decoders, each in a
    child process: they take batches of 8 while both GPU decoders are busy.
    """
    if device is None:
        device = "cuda" if _has_cuda() else "cpu"
    gpu = device.startswith("cuda")
    if decode not in ("cpu", "gpu"):
        raise ValueError(f"decode must be 'cpu' or 'gpu', got {decode!r}")
    if decode_spill and decode != "gpu":
        raise ValueError(f"decode_spill is for GPU decode, got decode={decode!r}")
    if model is None:
        from torchweir.kernels.models.resnet import resnet50

        model = resnet50(seed=seed)
    cores = os.cpu_count() or 2
    g = Graph()
    if decode == "cpu":
        executor = decode_executor or ("process" if gpu else "thread")
        decoder = g.node(
            "decode",
            CPU_DECODE,
            resize_h=224,
            resize_w=224,
            color="rgb",
            instance_num=decode_instances or max(1, cores - (2 if gpu else 1)),
            prefetch=1,
            executor=executor,
            # a process instance costs its thread a few GIL hand-offs per round trip:
            # under load, take several images per trip
            max=8 if executor == "process" else 1,
        )
    else:
        spill: dict[str, Any] = {}
        if decode_spill:
            spill = {
                "spill": CPU_DECODE,
                "spill_instance_num": decode_spill,
                "spill_executor": "process",
                "spill_max": 8,
                "spill_prefetch": 1,
                "spill_color": "rgb",
            }
        decoder = g.node(
            "decode",
            "S[DecodeTensor,ResizeTensor]",
            resize_h=224,
            resize_w=224,
            instance_num=decode_instances or 2,
            max=64,
            **spill,
        )
    net = TorchModel(
        model,
        precision=precision or ("fp16" if gpu else cpu_precision()),
        device=device,
        max_batch=max_batch or (256 if gpu else 16),
        input_shape="3x224x224",
        mean=MEAN,
        std=STD,
        compile=compile,
        compile_dynamic=compile_dynamic,
        buckets=buckets,
    )
    resnet = g.node(
        "resnet50",
        net,
        instance_num=model_instances or (2 if gpu else 1),
        batching_timeout=model_timeout_ms or 0,
        prefetch=model_prefetch,
    )
    decoder >> resnet
    return g


def cpu_precision() -> str:
    """bf16 where the CPU computes it natively (AVX512-BF16, AMX), else fp32.

    On such CPUs a bf16 ResNet-50 runs about 1.5x faster at batch 8 than at batch 1,
    where fp32 gains nothing from batching.
    """
    import torch

    supported = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    return "bf16" if supported is not None and supported() else "fp32"


def _has_cuda() -> bool:
    from torchweir.actors.cuda import cuda_device_count

    return cuda_device_count() > 0
