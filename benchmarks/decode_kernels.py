"""Which GPU kernels one decode+resize batch launches, and for how long (torch profiler).

Also: the batch's host time (decode call, resize call, wait), the CUDA runtime calls made
on the host, and with ``--beside-model`` when the decode's copies and kernels ran next to a
ResNet-50 CUDA graph replaying on another stream. ``--format`` decodes straight through
the binding into another nvJPEG output format (no resize).

Usage (on the GPU machine)::

    python benchmarks/decode_kernels.py --decoder nvjpeg --beside-model
"""

from __future__ import annotations

import argparse
import ctypes
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile

from torchweir.data import sample_image_bytes
from torchweir.kernels.base import InstanceContext
from torchweir.kernels.gpu.decode import DecodeTensor
from torchweir.kernels.gpu.nvjpeg import BatchDecoder
from torchweir.kernels.gpu.ops import ResizeTensor

sys.path.insert(0, str(Path(__file__).parent))
from gpu_resnet50 import imagenet_like
from nvjpeg_decoders import ModelLoop


class RawDecode:
    """One batch straight through :class:`BatchDecoder` into preallocated planes."""

    def __init__(self, images: list[bytes], fmt: str, host_ms: Counter[str]) -> None:
        self.decoder = BatchDecoder()
        self.fmt = fmt
        self.host_ms = host_ms
        self.images = images
        self.staging = torch.empty(sum(map(len, images)), dtype=torch.uint8, pin_memory=True)
        address = self.staging.data_ptr()
        self.sources = []
        for jpeg in images:
            ctypes.memmove(address, jpeg, len(jpeg))
            self.sources.append((address, len(jpeg)))
            address += len(jpeg)
        self.buffers = []
        self.planes = []
        for jpeg in images:
            sizes = self.decoder.plane_sizes(jpeg)
            if fmt == "yuv":
                shapes = [(h, w) for w, h in sizes] if len(sizes) == 3 else [sizes[0][::-1]]
            elif fmt in ("rgbi", "bgri"):
                shapes = [(sizes[0][1], 3 * sizes[0][0])]
            else:
                shapes = [sizes[0][::-1]] * 3
            planes = []
            for h, w in shapes:
                plane = torch.empty((h, w), dtype=torch.uint8, device="cuda")
                self.buffers.append(plane)
                planes.append((plane.data_ptr(), w))
            self.planes.append(planes)

    def __call__(self, stream: Any) -> None:
        t0 = time.perf_counter()
        self.decoder.decode(self.sources, self.planes, self.fmt, stream.cuda_stream)
        t1 = time.perf_counter()
        stream.synchronize()
        self.host_ms.update(decode=(t1 - t0) * 1e3, wait=(time.perf_counter() - t1) * 1e3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decoder", default="nvjpeg")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument(
        "--beside-model", action="store_true", help="with a ResNet-50 CUDA graph replaying"
    )
    parser.add_argument("--priority", default="normal", choices=("normal", "high"))
    parser.add_argument(
        "--format",
        default="",
        help="decode only, straight through the binding, to this nvJPEG output (rgb, rgbi, yuv)",
    )
    args = parser.parse_args()
    images = imagenet_like(sample_image_bytes(), 500)
    priority = -1 if args.priority == "high" else 0
    stream = torch.cuda.Stream(priority=priority)  # type: ignore[no-untyped-call]
    torch.cuda.set_stream(stream)
    ctx = InstanceContext(node="decode", device="cuda:0", stream=stream)
    decode = DecodeTensor(decoder=args.decoder).setup(ctx)
    resize = ResizeTensor(224, 224).setup(ctx)

    host_ms: Counter[str] = Counter()
    if args.format:
        raw = RawDecode([images[k % len(images)] for k in range(args.batch)], args.format, host_ms)

    def one_batch() -> None:
        if args.format:
            raw(stream)
            return
        items: list[Any] = [{"data": images[k % len(images)]} for k in range(args.batch)]
        t0 = time.perf_counter()
        decode.forward(items)
        t1 = time.perf_counter()
        for item in items:
            item["data"] = item.pop("result")
        resize.forward(items)
        t2 = time.perf_counter()
        stream.synchronize()
        t3 = time.perf_counter()
        host_ms.update(decode=(t1 - t0) * 1e3, resize=(t2 - t1) * 1e3, wait=(t3 - t2) * 1e3)

    for _ in range(3):
        one_batch()
    model = ModelLoop(128) if args.beside_model else None
    if model is not None:
        model.start()
        time.sleep(0.5)
    host_ms.clear()
    for _ in range(10):
        one_batch()
    print("host ms per batch: " + ", ".join(f"{k} {v / 10:.2f}" for k, v in host_ms.items()))
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        one_batch()
    if model is not None:
        model.stop()
    kernels: Counter[str] = Counter()
    gpu_us: Counter[str] = Counter()
    for event in prof.events():
        if event.device_type == torch.autograd.DeviceType.CUDA:
            name = event.name[:90]
            kernels[name] += 1
            gpu_us[name] += event.device_time
    print(f"{args.decoder}: {sum(kernels.values())} GPU ops, {sum(gpu_us.values()):.0f} us GPU")
    for name, count in kernels.most_common(25):
        print(f"  {count:4d} x {gpu_us[name]:8.0f} us  {name}")
    calls: Counter[str] = Counter()
    call_us: Counter[str] = Counter()
    for event in prof.events():
        if event.device_type == torch.autograd.DeviceType.CPU and event.name.startswith("cu"):
            calls[event.name] += 1
            call_us[event.name] += event.cpu_time_total
    print(
        "CUDA API calls on the host: "
        + ", ".join(
            f"{name} {count} x {call_us[name]:.0f} us" for name, count in calls.most_common(12)
        )
    )
    if model is not None:  # when each op of the batch ran, next to the model's
        ops = sorted(
            (e.time_range.start, e.time_range.end, e.name[:60])
            for e in prof.events()
            if e.device_type == torch.autograd.DeviceType.CUDA
        )
        begin = ops[0][0]
        ours = [op for op in ops if "nvjpeg" in op[2] or "Memcpy" in op[2]]
        for start, end, name in ours[:3] + ours[64:67] + ours[-3:]:
            print(f"  {start - begin:8.0f} us +{end - start:5.0f}  {name}")


if __name__ == "__main__":
    main()
