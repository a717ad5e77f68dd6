"""GPU decode+resize throughput: torchvision's nvJPEG path against torchweir's own binding
(each instance with its own nvJPEG handle, or sharing one, with decode calls in turn or not).

``S[DecodeTensor,ResizeTensor]`` kernels are driven directly from N threads, each with
its own CUDA stream and a blocking-event wait per batch (as instance threads do), alone
and next to a ResNet-50 fp16 CUDA graph replaying in a loop on its own stream (as the
service's model does), or next to graphs of as many one-element kernels (``--beside
tiny``), which cost a graph launch and almost no GPU time. Reports img/s for decode and
for the model, so the interference shows on both sides. ``--resize-kernels torch,triton``
compares ``ResizeTensor``'s two resizes; ``--fused`` runs the pair as the service does, as
one ``DecodeResizeTensor`` step.

Usage (on the GPU machine)::

    python benchmarks/nvjpeg_decoders.py --threads 1,2,4 --seconds 2
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
import random
import shlex
import sys
import threading
import time
from pathlib import Path
from typing import Any

import torch

from torchweir.data import sample_image_bytes
from torchweir.kernels.base import InstanceContext
from torchweir.kernels.gpu.decode import DecodeTensor
from torchweir.kernels.gpu.fused import DecodeResizeTensor
from torchweir.kernels.gpu.ops import ResizeTensor
from torchweir.kernels.models.resnet import resnet50

sys.path.insert(0, str(Path(__file__).parent))
from gpu_resnet50 import imagenet_like


class ModelLoop:
    """CUDA graphs replayed until stopped, one per thread on a stream of its own: ResNet-50
    fp16 channels-last at ``batch`` (``kind="model"``), or ``tiny_kernels`` one-element
    kernels (``kind="tiny"``): as many launches, almost no GPU work, to tell the cost of
    launching a graph beside decode from the cost of its kernels on the SMs. ``rate``
    paces each thread to at most that many replays per second (0: as fast as it can)."""

    def __init__(
        self,
        batch: int,
        kind: str = "model",
        threads: int = 1,
        tiny_kernels: int = 110,
        rate: float = 0.0,
    ) -> None:
        self.batch = batch
        self.kind = kind
        self.rate = rate
        self.graphs = [self._capture(kind, batch, tiny_kernels) for _ in range(threads)]
        self.images = 0
        self.replays = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    @staticmethod
    def _capture(kind: str, batch: int, tiny_kernels: int) -> tuple[Any, Any, Any]:
        stream = torch.cuda.Stream()  # type: ignore[no-untyped-call]
        if kind == "model":
            net = resnet50().half().cuda().eval().to(memory_format=torch.channels_last)
            x = torch.randn((batch, 3, 224, 224), device="cuda").half()
            x = x.to(memory_format=torch.channels_last)

            def body() -> None:
                net(x)

        elif kind == "tiny":
            x = torch.zeros(1, device="cuda")

            def body() -> None:
                for _ in range(tiny_kernels):
                    x.add_(1)

        else:
            raise SystemExit(f"--beside must be model or tiny, got {kind!r}")
        with torch.inference_mode(), torch.cuda.stream(stream):
            for _ in range(3):
                body()
            stream.synchronize()
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, stream=stream):
                body()
        stream.synchronize()
        return graph, stream, x

    def start(self) -> None:
        self.images = self.replays = 0
        self._stop.clear()
        self._threads = [
            threading.Thread(target=self._run, args=(g,), daemon=True) for g in self.graphs
        ]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def _run(self, captured: tuple[Any, Any, Any]) -> None:
        graph, stream, _ = captured
        done = torch.cuda.Event(blocking=True)  # type: ignore[no-untyped-call]
        period = 1 / self.rate if self.rate else 0.0
        due = time.perf_counter()
        with torch.cuda.stream(stream):
            while not self._stop.is_set():
                graph.replay()
                done.record(stream)
                done.synchronize()
                with self._lock:
                    self.replays += 1
                    self.images += self.batch if self.kind == "model" else 0
                if period:
                    due += period
                    time.sleep(max(0.0, due - time.perf_counter()))


def decode_rate(
    decoder: str,
    threads: int,
    images: list[bytes],
    batch: int,
    seconds: float,
    priority: int = 0,
    resize: bool = True,
    jitter: int = 0,
    resize_kernel: str = "auto",
    fused: bool = False,
) -> tuple[float, float]:
    """img/s of ``threads`` instances of DecodeTensor(decoder)+ResizeTensor(224), their
    streams at ``priority`` (-1: high), and the mean ms per batch that the thread spent
    inside ``DecodeTensor.forward`` (host time: a call that waits on the GPU shows here).
    With ``jitter``, batch sizes vary in ``[batch - jitter, batch]`` as in the service;
    with ``fused``, the two run as one step (``forward`` then times both)."""
    counts = [0] * threads
    forward_s = [0.0] * threads
    batches = [0] * threads
    start = threading.Barrier(threads + 1)
    stop = threading.Event()
    failures: list[BaseException] = []

    def worker(index: int) -> None:
        stream = torch.cuda.Stream(priority=priority)  # type: ignore[no-untyped-call]
        torch.cuda.set_stream(stream)
        ctx = InstanceContext(node="decode", index=index, device="cuda:0", stream=stream)
        name, _, mode = decoder.partition(":")  # nvjpeg:serialized -> how handles are shared
        kernel = DecodeTensor(decoder=name)
        kernel.nvjpeg_handle = mode or kernel.nvjpeg_handle
        resizer = ResizeTensor(224, 224, resize_kernel=resize_kernel)
        if fused:
            kernel = DecodeResizeTensor(kernel, resizer)
        decode = kernel.setup(ctx)
        resizer = resizer.setup(ctx)
        done = torch.cuda.Event(blocking=True)  # type: ignore[no-untyped-call]
        offset = index * 7
        sizes = random.Random(index)

        def one_batch() -> int:
            n = batch - sizes.randint(0, jitter)
            items: list[Any] = [{"data": images[(offset + k) % len(images)]} for k in range(n)]
            began = time.perf_counter()
            errors = decode.forward(items)
            if errors is not None:
                raise RuntimeError(f"decode failed: {next(e for e in errors if e)!r}")
            forward_s[index] += time.perf_counter() - began
            batches[index] += 1
            if resize and not fused:
                for item in items:
                    item["data"] = item.pop("result")
                assert resizer.forward(items) is None
            done.record(stream)
            done.synchronize()
            return n

        try:
            for _ in range(3):
                one_batch()
            forward_s[index] = batches[index] = 0
            start.wait()
            while not stop.is_set():
                counts[index] += one_batch()
        except BaseException as exc:
            if not isinstance(exc, threading.BrokenBarrierError):
                failures.append(exc)
            start.abort()
            raise
        finally:
            decode.close()

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    try:
        start.wait()
    except threading.BrokenBarrierError:
        for t in pool:
            t.join()
        raise failures[0] from None
    began = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    total = sum(counts)
    elapsed = time.perf_counter() - began
    for t in pool:
        t.join()
    if failures:
        raise failures[0]
    return total / elapsed, 1e3 * sum(forward_s) / max(1, sum(batches))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", default="1,2,4")
    parser.add_argument(
        "--decoders",
        default="torchvision,nvjpeg:own,nvjpeg:serialized",
        help="torchvision, or nvjpeg[:own|shared|serialized] (our binding's handle sharing)",
    )
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--model-batch", type=int, default=128)
    parser.add_argument(
        "--beside",
        default="model",
        help="what replays beside decode: model (ResNet-50) or tiny (one-element kernels)",
    )
    parser.add_argument("--beside-threads", type=int, default=1, help="graphs replaying at once")
    parser.add_argument("--tiny-kernels", type=int, default=110, help="kernels per tiny graph")
    parser.add_argument("--beside-rate", type=float, default=0.0, help="replays/s per thread")
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--long-side", type=int, default=500)
    parser.add_argument("--sizes", type=int, default=1, help="sizes per photo (imagenet_like)")
    parser.add_argument("--priority", default="normal", choices=("normal", "high"))
    parser.add_argument("--no-resize", action="store_true", help="decode alone")
    parser.add_argument(
        "--resize-kernels", default="auto", help="comma-separated: auto, torch, triton"
    )
    parser.add_argument("--fused", action="store_true", help="decode and resize as one step")
    parser.add_argument(
        "--jitter",
        default="0",
        help="comma-separated: batch sizes vary by up to this many images below --batch",
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    images = imagenet_like(sample_image_bytes(), args.long_side, args.sizes)
    model = ModelLoop(
        args.model_batch, args.beside, args.beside_threads, args.tiny_kernels, args.beside_rate
    )
    model.start()
    time.sleep(args.seconds)
    model.stop()
    model_alone = model.images / args.seconds
    rows: list[dict[str, Any]] = []
    resize = not args.no_resize
    print(
        f"beside: {args.beside} x {args.beside_threads} thread(s), alone "
        f"{model.replays / args.seconds:,.0f} replays/s, {model_alone:,.0f} img/s",
        flush=True,
    )
    for decoder, resize_kernel in itertools.product(
        args.decoders.split(","), args.resize_kernels.split(",")
    ):
        for threads in [int(t) for t in args.threads.split(",")]:
            for jitter in [int(j) for j in args.jitter.split(",")]:
                priority = -1 if args.priority == "high" else 0
                how = (args.batch, args.seconds, priority, resize, jitter)
                how += (resize_kernel, args.fused)
                alone, forward_alone = decode_rate(decoder, threads, images, *how)
                alone_end = time.time()  # to line the windows up with sampled GPU clocks
                model.start()
                began = time.perf_counter()
                beside, forward_beside = decode_rate(decoder, threads, images, *how)
                model.stop()
                elapsed = time.perf_counter() - began
                beside_end = time.time()
                model_beside = model.images / elapsed
                replays_beside = model.replays / elapsed
                row = {
                    "decoder": decoder,
                    "resize_kernel": resize_kernel,
                    "threads": threads,
                    "jitter": jitter,
                    "decode_alone_img_per_s": round(alone),
                    "decode_beside_model_img_per_s": round(beside),
                    "model_beside_decode_img_per_s": round(model_beside),
                    "replays_beside_decode_per_s": round(replays_beside),
                    "forward_alone_ms": round(forward_alone, 3),
                    "forward_beside_model_ms": round(forward_beside, 3),
                    "alone_ended_unix_s": round(alone_end, 2),
                    "beside_ended_unix_s": round(beside_end, 2),
                }
                rows.append(row)
                print(
                    f"{decoder:<18} {resize_kernel:<6} {threads} thread(s), jitter {jitter:>2}: "
                    "decode alone "
                    f"{alone:>8,.0f} img/s, beside {beside:>8,.0f} img/s (beside then "
                    f"{model_beside:,.0f} img/s, {replays_beside:,.0f} replays/s); forward() "
                    f"{forward_alone:.2f} / "
                    f"{forward_beside:.2f} ms per batch",
                    flush=True,
                )
    if args.json:
        report = {
            "device": torch.cuda.get_device_name(0),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "command": shlex.join([Path(sys.executable).name, *sys.argv]),
            "decode_batch": args.batch,
            "decode_stream_priority": args.priority,
            "resize": resize,
            "fused": args.fused,
            "photo_sizes": args.sizes,
            "beside": args.beside,
            "beside_threads": args.beside_threads,
            "tiny_kernels": args.tiny_kernels if args.beside == "tiny" else None,
            "beside_rate_per_thread": args.beside_rate,
            "model_alone_img_per_s": round(model_alone),
            "rows": rows,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
