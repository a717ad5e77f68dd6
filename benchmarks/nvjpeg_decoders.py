"""GPU decode+resize throughput: torchvision's nvJPEG path against torchweir's own binding
(each instance with its own nvJPEG handle, or sharing one, with decode calls in turn or not).

``S[DecodeTensor,ResizeTensor]`` kernels are driven directly from N threads, each with
its own CUDA stream and a blocking-event wait per batch (as instance threads do), alone
and next to a ResNet-50 fp16 CUDA graph replaying in a loop on its own stream (as the
service's model does). Reports img/s for decode and for the model, so the interference
shows on both sides.

Usage (on the GPU machine)::

    python benchmarks/nvjpeg_decoders.py --threads 1,2,4 --seconds 2
"""

from __future__ import annotations

import argparse
import datetime
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
from torchweir.kernels.gpu.ops import ResizeTensor
from torchweir.kernels.models.resnet import resnet50

sys.path.insert(0, str(Path(__file__).parent))
from gpu_resnet50 import imagenet_like


class ModelLoop:
    """ResNet-50 fp16 channels-last, one CUDA graph at ``batch``, replayed until stopped."""

    def __init__(self, batch: int) -> None:
        self.batch = batch
        net = resnet50().half().cuda().eval().to(memory_format=torch.channels_last)
        self.stream = torch.cuda.Stream()  # type: ignore[no-untyped-call]
        shape = (batch, 3, 224, 224)
        self.x = torch.randn(shape, device="cuda").half().to(memory_format=torch.channels_last)
        with torch.inference_mode(), torch.cuda.stream(self.stream):
            for _ in range(3):
                net(self.x)
            self.stream.synchronize()
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph, stream=self.stream):
                net(self.x)
        self.stream.synchronize()
        self.images = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.images = 0
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join()

    def _run(self) -> None:
        done = torch.cuda.Event(blocking=True)  # type: ignore[no-untyped-call]
        with torch.cuda.stream(self.stream):
            while not self._stop.is_set():
                self.graph.replay()
                done.record(self.stream)
                done.synchronize()
                self.images += self.batch


def decode_rate(
    decoder: str,
    threads: int,
    images: list[bytes],
    batch: int,
    seconds: float,
    priority: int = 0,
    resize: bool = True,
    jitter: int = 0,
) -> tuple[float, float]:
    """img/s of ``threads`` instances of DecodeTensor(decoder)+ResizeTensor(224), their
    streams at ``priority`` (-1: high), and the mean ms per batch that the thread spent
    inside ``DecodeTensor.forward`` (host time: a call that waits on the GPU shows here).
    With ``jitter``, batch sizes vary in ``[batch - jitter, batch]`` as in the service."""
    counts = [0] * threads
    forward_s = [0.0] * threads
    batches = [0] * threads
    start = threading.Barrier(threads + 1)
    stop = threading.Event()

    def worker(index: int) -> None:
        stream = torch.cuda.Stream(priority=priority)  # type: ignore[no-untyped-call]
        torch.cuda.set_stream(stream)
        ctx = InstanceContext(node="decode", index=index, device="cuda:0", stream=stream)
        name, _, mode = decoder.partition(":")  # nvjpeg:serialized -> how handles are shared
        kernel = DecodeTensor(decoder=name)
        kernel.nvjpeg_handle = mode or kernel.nvjpeg_handle
        decode = kernel.setup(ctx)
        resizer = ResizeTensor(224, 224).setup(ctx)
        done = torch.cuda.Event(blocking=True)  # type: ignore[no-untyped-call]
        offset = index * 7
        sizes = random.Random(index)

        def one_batch() -> int:
            n = batch - sizes.randint(0, jitter)
            items: list[Any] = [{"data": images[(offset + k) % len(images)]} for k in range(n)]
            began = time.perf_counter()
            assert decode.forward(items) is None
            forward_s[index] += time.perf_counter() - began
            batches[index] += 1
            if resize:
                for item in items:
                    item["data"] = item.pop("result")
                assert resizer.forward(items) is None
            done.record(stream)
            done.synchronize()
            return n

        for _ in range(3):
            one_batch()
        forward_s[index] = batches[index] = 0
        start.wait()
        while not stop.is_set():
            counts[index] += one_batch()
        decode.close()

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    start.wait()
    began = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    total = sum(counts)
    elapsed = time.perf_counter() - began
    for t in pool:
        t.join()
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
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--long-side", type=int, default=500)
    parser.add_argument("--priority", default="normal", choices=("normal", "high"))
    parser.add_argument("--no-resize", action="store_true", help="decode alone")
    parser.add_argument(
        "--jitter",
        default="0",
        help="comma-separated: batch sizes vary by up to this many images below --batch",
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    images = imagenet_like(sample_image_bytes(), args.long_side)
    model = ModelLoop(args.model_batch)
    model.start()
    time.sleep(args.seconds)
    model.stop()
    model_alone = model.images / args.seconds
    rows: list[dict[str, Any]] = []
    resize = not args.no_resize
    print(f"model alone, batch {args.model_batch}: {model_alone:,.0f} img/s", flush=True)
    for decoder in args.decoders.split(","):
        for threads in [int(t) for t in args.threads.split(",")]:
            for jitter in [int(j) for j in args.jitter.split(",")]:
                priority = -1 if args.priority == "high" else 0
                how = (args.batch, args.seconds, priority, resize, jitter)
                alone, forward_alone = decode_rate(decoder, threads, images, *how)
                model.start()
                began = time.perf_counter()
                beside, forward_beside = decode_rate(decoder, threads, images, *how)
                model.stop()
                model_beside = model.images / (time.perf_counter() - began)
                row = {
                    "decoder": decoder,
                    "threads": threads,
                    "jitter": jitter,
                    "decode_alone_img_per_s": round(alone),
                    "decode_beside_model_img_per_s": round(beside),
                    "model_beside_decode_img_per_s": round(model_beside),
                    "forward_alone_ms": round(forward_alone, 3),
                    "forward_beside_model_ms": round(forward_beside, 3),
                }
                rows.append(row)
                print(
                    f"{decoder:<18} {threads} thread(s), jitter {jitter:>2}: decode alone "
                    f"{alone:>8,.0f} img/s, beside the model {beside:>8,.0f} img/s (model then "
                    f"{model_beside:,.0f}); forward() {forward_alone:.2f} / "
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
            "model_alone_img_per_s": round(model_alone),
            "rows": rows,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
