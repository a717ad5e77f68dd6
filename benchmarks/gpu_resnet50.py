"""The seed's ResNet-50 service on one GPU, from JPEG bytes to logits, against its ceilings.

In one run, on one machine:

* stage ceilings (img/s): the model alone at its best batch size per model mode (CUDA
  graph fp16; compiled when ``--compile`` is given), CPU decode+resize+cvtColor on every
  core, and nvJPEG alone;
* the GPU stages together (``joint``): the GPU-decode service's own decode and model
  instances run by plain threads on the one GPU, with no runtime around them
  (``gpu_joint_ceiling.py``). The stages share the GPU, so this, not the slower stage
  alone, is what a runtime can reach with these kernels;
* the service through torchweir in three variants, ``cpu-decode``
  (``S[DecodeMat,ResizeMat,cvtColorMat,Mat2Tensor]`` x N instances, each in a process),
  ``cpu-decode-threads`` (the same on instance threads) and ``gpu-decode``
  (``S[DecodeTensor,ResizeTensor]``), all feeding ``TorchModel`` (fp16, CUDA graphs);
  ``gpu+cpuN`` gives GPU decode a spill pool of N CPU decoders in processes;
* the naive service: per-request preprocessing in each client thread and the same fp16
  model under one lock, with ``torch.set_num_threads(1)``.

Usage (on the GPU machine)::

    python benchmarks/gpu_resnet50.py --clients 10,256 --seconds 10 \
        --json benchmarks/results/gpu_resnet50.json --plot benchmarks/results/gpu_resnet50.png
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch

import torchweir as tw
from torchweir.actors.malloc import keep_freed_buffers
from torchweir.bench import RuntimeTarget, plot, table, to_json
from torchweir.bench.naive import naive_target
from torchweir.bench.resnet50 import MEAN, STD, service_graph
from torchweir.data import sample_image_bytes
from torchweir.kernels.cpu.reference import preprocess_reference
from torchweir.kernels.models.resnet import resnet50


def imagenet_like(images: list[bytes], long_side: int, sizes: int = 1) -> list[bytes]:
    """The photos as ImageNet's validation images come: baseline JPEG (quality 90, 4:2:0),
    the longer side ``long_side`` pixels. The bundled set also holds a progressive JPEG and
    a 1024 x 768 photo, which nvJPEG's hardware decoder and a 224 px model do not need.

    With ``sizes`` > 1, each photo comes at that many sizes (the longer side 4 px shorter
    each time), as ImageNet's photos come at many: a batch then holds up to ``sizes`` times
    as many distinct sizes, which costs a resize that works size by size."""
    import cv2
    import numpy as np

    out = []
    for k in range(sizes):
        side = long_side - 4 * k
        for jpeg in images:
            image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
            h, w = image.shape[:2]
            scale = side / max(h, w)
            resized = cv2.resize(
                image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA
            )
            ok, encoded = cv2.imencode(".jpg", resized, [cv2.IMWRITE_JPEG_QUALITY, 90])
            assert ok
            out.append(encoded.tobytes())
    return out


def timed_replays(graphed: Any, batch: torch.Tensor, seconds: float) -> float:
    """img/s of replaying the model on ``batch`` for about ``seconds`` (CUDA events)."""
    for _ in range(3):
        graphed(batch)
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    count = 0
    start.record()
    began = time.perf_counter()
    while time.perf_counter() - began < seconds:
        for _ in range(10):
            graphed(batch)
        count += 10
        torch.cuda.current_stream().synchronize()
    end.record()
    end.synchronize()
    return batch.shape[0] * count / (start.elapsed_time(end) / 1000)


def model_ceiling(
    batch_sizes: list[int], compile_mode: str, seconds: float, dynamic: bool = False
) -> dict[str, Any]:
    """The model node's own kernel, one instance, replayed back to back."""
    kernel = tw.kernels.TorchModel(
        resnet50(0),
        precision="fp16",
        device="cuda",
        input_shape="3x224x224",
        max_batch=max(batch_sizes),
        buckets="" if dynamic else ",".join(map(str, batch_sizes)),  # dynamic: the service's
        mean=MEAN,
        std=STD,
        compile=compile_mode,
        compile_dynamic=dynamic,
    )
    stream = torch.cuda.Stream()
    started = time.perf_counter()
    with torch.cuda.stream(stream):
        instance = kernel.setup(
            tw.InstanceContext("ceiling", device="cuda:0", stream=stream, keep_on_device=True)
        )
        setup_s = time.perf_counter() - started
        graphs = instance.graphs  # type: ignore[attr-defined]
        rates = {}
        for size in batch_sizes:
            batch = torch.randint(0, 256, (size, 3, 224, 224), dtype=torch.uint8, device="cuda")
            rates[str(size)] = timed_replays(graphs, batch, seconds)
    mode = (compile_mode + (" dynamic" if dynamic else "")) or "cuda-graph"
    return {"mode": mode, "setup_s": setup_s, "img_per_s": rates}


def cpu_decode_ceiling(images: list[bytes], threads: int, seconds: float) -> float:
    """decode+resize+cvtColor (+ to tensor) on ``threads`` threads, no runtime."""
    import cv2

    keep_freed_buffers()  # as a runtime and its process instances have it
    cv2.setNumThreads(1)  # the threads are the parallelism, as in the decode node
    stop = time.perf_counter() + seconds
    counts = [0] * threads

    def work(k: int) -> None:
        i = k
        while time.perf_counter() < stop:
            preprocess_reference(images[i % len(images)], 224, 224, "rgb")
            counts[k] += 1
            i += threads

    began = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(work, range(threads)))
    return sum(counts) / (time.perf_counter() - began)


def _decode_in_process(images: list[bytes], start_at: float, seconds: float, out: Any) -> None:
    import cv2

    keep_freed_buffers()  # as a runtime and its process instances have it
    cv2.setNumThreads(1)
    torch.set_num_threads(1)  # one process per core: no OpenMP pools spinning on each other
    for jpeg in images * 3:  # warm up: imports, allocator, caches
        preprocess_reference(jpeg, 224, 224, "rgb")
    time.sleep(max(0.0, start_at - time.time()))
    stop = time.perf_counter() + seconds
    count = 0
    while time.perf_counter() < stop:
        preprocess_reference(images[count % len(images)], 224, 224, "rgb")
        count += 1
    out.put(count)


def cpu_decode_ceiling_processes(images: list[bytes], processes: int, seconds: float) -> float:
    """The same work in separate processes, started together: the cores' own ceiling,
    with no GIL shared between the workers."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    start_at = time.time() + 5.0  # time for every process to start and warm up
    workers = [
        context.Process(target=_decode_in_process, args=(images, start_at, seconds, out))
        for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    counts = [out.get(timeout=60 + seconds) for _ in workers]
    for worker in workers:
        worker.join()
    return sum(counts) / seconds


def nvjpeg_ceiling(images: list[bytes], batch: int, seconds: float) -> float:
    from torchvision.io import ImageReadMode, decode_jpeg

    data = [
        torch.frombuffer(bytearray(images[i % len(images)]), dtype=torch.uint8)
        for i in range(batch)
    ]
    decode_jpeg(data, mode=ImageReadMode.RGB, device="cuda")
    torch.cuda.synchronize()
    count = 0
    began = time.perf_counter()
    while time.perf_counter() - began < seconds:
        decode_jpeg(data, mode=ImageReadMode.RGB, device="cuda")
        count += batch
    torch.cuda.synchronize()
    return count / (time.perf_counter() - began)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", default="10,256")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument(
        "--variants",
        default="cpu,gpu",
        help="decode variants: cpu (in processes), cpu-threads, gpu, gpu-torchvision, "
        "gpu-nvjpeg, gpu-own, gpu-shared, gpu-serialized; +cpuN spills GPU decode to N "
        "CPU decoders in processes (gpu+cpu8); @DxM sets the decode and model instances "
        "(gpu@2x1)",
    )
    parser.add_argument("--decode-instances", type=int, default=0, help="0: automatic")
    parser.add_argument("--gpu-decode-instances", type=int, default=2)
    parser.add_argument("--model-instances", type=int, default=2)
    parser.add_argument("--max-batch", type=int, default=256)
    parser.add_argument("--no-naive", action="store_true")
    parser.add_argument("--ceilings", default="model,cpu,nvjpeg,joint", help="'' to skip")
    parser.add_argument("--ceiling-seconds", type=float, default=3.0)
    parser.add_argument("--compile", default="", help="also measure a torch.compile mode")
    parser.add_argument(
        "--compile-dynamic",
        action="store_true",
        help="compile once for every batch size (ceiling and targets)",
    )
    parser.add_argument("--completion", default="event", choices=("event", "callback"))
    parser.add_argument(
        "--long-side",
        type=int,
        default=500,
        help="re-encode the photos ImageNet-like (0: as bundled)",
    )
    parser.add_argument(
        "--switch-interval",
        type=float,
        default=0.0005,
        help="GIL switch interval while torchweir runs (s); 0 leaves it",
    )
    parser.add_argument(
        "--ab-switch",
        action="store_true",
        help="also run cpu-decode with the default switch interval",
    )
    parser.add_argument(
        "--model-compile",
        default="",
        help="torch.compile mode for the torchweir targets' model node",
    )
    parser.add_argument("--buckets", default="", help="CUDA graph batch sizes, e.g. 128")
    parser.add_argument(
        "--model-timeout", type=float, default=2.0, help="the model node's batching_timeout (ms)"
    )
    parser.add_argument(
        "--ab-prefetch",
        action="store_true",
        help="also run gpu-decode with prefetch=1 on the model node",
    )
    parser.add_argument(
        "--tune-malloc",
        action="store_true",
        help="keep large buffers in the heap (glibc mallopt) before the runs",
    )
    parser.add_argument("--json", type=Path)
    parser.add_argument("--plot", type=Path)
    args = parser.parse_args()

    images = sample_image_bytes()
    if args.long_side:
        images = imagenet_like(images, args.long_side)
    device = torch.cuda.get_device_name(0)
    cores = os.cpu_count() or 1
    report: dict[str, Any] = {
        "device": device,
        "cpu_count": cores,
        "torch": torch.__version__,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": shlex.join([Path(sys.executable).name, *sys.argv]),
        "images": f"{len(images)} bundled photos"
        + (
            f", re-encoded baseline JPEG q90, long side {args.long_side} px"
            if args.long_side
            else ""
        ),
        "ceilings": {},
    }
    # the service's settings, shared by its variants and the GPU stages-together ceiling
    common: dict[str, Any] = {
        "model_instances": args.model_instances,
        "max_batch": args.max_batch,
        "buckets": args.buckets,
        "model_timeout_ms": args.model_timeout,
    }
    compiled = {"compile": args.model_compile, "compile_dynamic": args.compile_dynamic}
    ceilings = report["ceilings"]
    wanted = {c for c in args.ceilings.split(",") if c}
    if "model" in wanted:
        ceilings["model_cuda_graph_fp16"] = model_ceiling([64, 128, 256], "", args.ceiling_seconds)
        print("model, CUDA graph fp16:", json.dumps(ceilings["model_cuda_graph_fp16"]), flush=True)
        if args.compile:
            ceilings["model_compiled_fp16"] = model_ceiling(
                [64, 128, 256] if args.compile_dynamic else [128],
                args.compile,
                args.ceiling_seconds,
                args.compile_dynamic,
            )
            print("model, compiled:", json.dumps(ceilings["model_compiled_fp16"]), flush=True)
    if "cpu" in wanted:
        ceilings["cpu_decode_resize_cvtcolor"] = {
            "threads": cores,
            "img_per_s": cpu_decode_ceiling(images, cores, args.ceiling_seconds),
        }
        print("CPU decode+resize, threads:", ceilings["cpu_decode_resize_cvtcolor"], flush=True)
        ceilings["cpu_decode_processes"] = {
            "processes": cores,
            "img_per_s": cpu_decode_ceiling_processes(images, cores, args.ceiling_seconds),
        }
        print("CPU decode+resize, processes:", ceilings["cpu_decode_processes"], flush=True)
    if "nvjpeg" in wanted:
        ceilings["nvjpeg_batch64"] = {"img_per_s": nvjpeg_ceiling(images, 64, args.ceiling_seconds)}
        print("nvJPEG:", ceilings["nvjpeg_batch64"], flush=True)
    if "joint" in wanted:
        from gpu_joint_ceiling import joint_rate

        service = service_graph(
            decode="gpu", decode_instances=args.gpu_decode_instances or None, **common, **compiled
        )
        found = joint_rate(service.spec(), images, 2.0, args.ceiling_seconds)
        ceilings["gpu_stages_together"] = {
            "model": args.model_compile or "cuda-graph",
            "img_per_s": found.pop("img_per_s"),
            **found,
        }
        print("GPU stages together:", json.dumps(ceilings["gpu_stages_together"]), flush=True)

    targets: list[Any] = []
    runtime = {"switch_interval": args.switch_interval} if args.switch_interval else {}
    for variant in [v for v in args.variants.split(",") if v]:
        # cpu (processes), cpu-threads, gpu (DecodeTensor's default), gpu-torchvision,
        # gpu-nvjpeg (our binding), gpu-own|shared|serialized (the binding, its instances
        # sharing nvJPEG handles so)
        # a suffix @DxM sets the instances of decode (D) and model (M): gpu@1x1
        variant, _, counts = variant.partition("@")
        variant, _, spill = variant.partition("+")
        decode, _, how = variant.partition("-")
        if spill and not (decode == "gpu" and spill.startswith("cpu") and spill[3:].isdigit()):
            parser.error(f"variant {variant}+{spill}: only gpu variants spill, to cpuN")
        instances = args.gpu_decode_instances if decode == "gpu" else args.decode_instances
        per_node = dict(common)
        if counts:
            decode_count, _, model_count = counts.partition("x")
            instances, per_node["model_instances"] = int(decode_count), int(model_count)
        executor = {"threads": "thread", "": None}[how] if decode == "cpu" else None
        g: Any = service_graph(
            decode=decode,
            decode_instances=instances or None,
            decode_executor=executor,
            decode_spill=int(spill[3:]) if spill else 0,
            **per_node,
            **compiled,
        )
        if args.completion != "event":
            g = _with_node_param(g, "resnet50", "completion", args.completion)
        if decode == "gpu" and how:
            decoder = how if how in ("torchvision", "nvjpeg") else "nvjpeg"
            g = _with_node_param(g, "decode", "decoder", decoder)
            if how not in ("torchvision", "nvjpeg"):
                g = _with_node_param(g, "decode", "nvjpeg_handle", how)
        name = f"{decode}-decode" + (f"-{how}" if how else "") + (f"+{spill}" if spill else "")
        name += f"@{counts}" if counts else ""
        targets.append(RuntimeTarget(g, name=name, **runtime))
        if variant == "cpu" and args.ab_switch:
            targets.append(RuntimeTarget(g, name="cpu-decode-5ms"))
        if variant == "gpu" and args.ab_prefetch:
            prefetching = service_graph(
                decode="gpu",
                decode_instances=instances or None,
                model_prefetch=1,
                **common,
                **compiled,
            )
            targets.append(RuntimeTarget(prefetching, name="gpu-decode-prefetch", **runtime))
    if not args.no_naive:
        targets.append(naive_target(service_graph(decode="cpu", **common)))
    clients = [int(c) for c in args.clients.split(",")]
    result = tw.bench.run(
        targets,
        images,
        clients=clients,
        seconds=args.seconds,
        warmup=args.warmup,
        progress=False,
        command=report["command"],
    )
    print(table(result), flush=True)
    report["batch_sizes"] = _batch_sizes(targets)
    summary = dict(report)
    summary["bench"] = json.loads(to_json(result))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=1) + "\n")
    if args.plot and result.points:
        plot(result, args.plot)
    _print_ratios(result, ceilings)


def _batch_sizes(targets: list[Any]) -> dict[str, dict[str, float]]:
    """Mean batch size per node of each torchweir target, over its whole run."""
    found: dict[str, dict[str, float]] = {}
    for target in targets:
        stats = getattr(target, "last_statistics", None)
        if stats is None:
            continue
        for node in stats.nodes:
            total = sum(size * count for size, count in enumerate(node.batch_sizes))
            batches = sum(node.batch_sizes)
            if batches:
                found.setdefault(target.name, {})[node.node] = round(total / batches, 1)
    print("mean batch size per node:", json.dumps(found), flush=True)
    return found


def _with_node_param(graph: Any, node: str, key: str, value: Any) -> tw.GraphSpec:
    spec = graph.spec() if isinstance(graph, tw.Graph) else graph
    nodes = [n if n.name != node else _param(n, key, value) for n in spec.nodes]
    return tw.GraphSpec(nodes=tuple(nodes), entry=spec.entry)


def _param(node: tw.NodeSpec, key: str, value: Any) -> tw.NodeSpec:
    import msgspec

    return msgspec.structs.replace(node, params={**node.params, key: value})


def _print_ratios(result: Any, ceilings: dict[str, Any]) -> None:
    rates = {}
    for name, value in ceilings.items():
        if "img_per_s" in value:
            found = value["img_per_s"]
            rates[name] = max(found.values()) if isinstance(found, dict) else found
    if not rates:
        return
    print("ceilings (img/s): " + ", ".join(f"{k} {v:,.0f}" for k, v in rates.items()))
    for point in result.points:
        decode = {
            "cpu-decode": "cpu_decode_processes",
            "cpu-decode-threads": "cpu_decode_resize_cvtcolor",
        }.get(point.target, "nvjpeg_batch64")
        decode_rate = rates.get(decode, 1e12)
        if "+cpu" in point.target:  # nvJPEG and the CPU decoders together
            decode_rate += rates.get("cpu_decode_processes", 0.0)
        slowest = min(
            rates.get("model_compiled_fp16", rates.get("model_cuda_graph_fp16", 1e12)),
            decode_rate,
        )
        together = ""
        if point.target == "gpu-decode" and "gpu_stages_together" in rates:
            joint = rates["gpu_stages_together"]
            together = f", {point.stats.qps / joint:.0%} of the GPU stages together ({joint:,.0f})"
        print(
            f"{point.target:<18} {point.load:<12} {point.stats.qps:>9,.0f} img/s = "
            f"{point.stats.qps / slowest:.0%} of its slowest stage ({slowest:,.0f}){together}"
        )


if __name__ == "__main__":
    threading.current_thread().name = "main"
    main()
