"""The GPU service's two nodes sharing one GPU with no runtime around them.

``gpu_resnet50.py`` measures each stage alone, with the whole GPU to itself. In the service
the stages share the GPU (its SMs, copy engines and work queues, nvJPEG's engine) and the
process (its GIL). This script runs the service graph's own nodes as plain threads, the
way instance threads run them: each ``decode`` instance builds the node's kernel, binds
its stream (``CudaBinding``), runs ``forward`` on a batch of ``max`` JPEGs and waits for
its stream; the batch then goes through a queue to a ``resnet50`` instance, which takes
every batch queued (up to its ``max``), as its mailbox does with no batching timeout. No
event loop, no actors, no clients, no futures. What it reaches is what these kernels
reach together in one Python process: the ceiling the runtime should be held to.

``--rounds`` alternates it with the service through the runtime (the profile's lean
closed-loop clients, ``gpu_pipeline_profile.py``) in one process, so each ratio shares the
machine's state.

Usage (on the GPU machine)::

    python benchmarks/gpu_joint_ceiling.py --model-compile max-autotune-no-cudagraphs \\
        --compile-dynamic --rounds 2
"""

from __future__ import annotations

import argparse
import json
import queue
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import torchweir as tw
from gpu_pipeline_profile import add_service_arguments, one, variant_graph
from gpu_resnet50 import imagenet_like
from torchweir.actors.cuda import CudaBinding
from torchweir.data import sample_image_bytes
from torchweir.kernels.base import InstanceContext
from torchweir.runtime.build import node_kernel


class Stage:
    """Per-thread tallies of one stage: batches, images, seconds working and waiting."""

    def __init__(self, threads: int) -> None:
        self.batches = [0] * threads
        self.images = [0] * threads
        self.busy_s = [0.0] * threads
        self.wait_s = [0.0] * threads

    def snapshot(self) -> tuple[int, int, float, float]:
        return sum(self.batches), sum(self.images), sum(self.busy_s), sum(self.wait_s)

    def run(
        self, index: int, kernel: Any, binding: CudaBinding, ctx: Any, items: list[Any]
    ) -> None:
        """One batch as an instance thread runs it: forward on its stream, then the wait."""
        began = time.perf_counter()
        with binding.batch_scope(ctx):
            assert kernel.forward(items) is None
        binding.complete(ctx)
        self.busy_s[index] += time.perf_counter() - began
        self.batches[index] += 1
        self.images[index] += len(items)


class Split:
    """Where a decode instance's batch goes: per-thread seconds in ``decode_jpeg`` (nvJPEG
    under torchvision's lock, GIL released), in the rest of ``DecodeTensor.forward``, in
    ``ResizeTensor.forward`` and waiting for the stream. Installed by patching, so that
    the service through the runtime is measured the same way."""

    PARTS = ("decode_jpeg", "decode_rest", "resize", "complete")

    def __init__(self) -> None:
        self.seconds: dict[str, float] = dict.fromkeys(self.PARTS, 0.0)
        self.batches = 0
        self._lock = threading.Lock()

    def install(self) -> None:
        import torchvision.io

        from torchweir.kernels.gpu.decode import DecodeTensor
        from torchweir.kernels.gpu.ops import ResizeTensor

        split = self

        def timed(part: str, fn: Any) -> Any:
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                if "decode" not in threading.current_thread().name:
                    return fn(*args, **kwargs)
                began = time.perf_counter()
                try:
                    return fn(*args, **kwargs)
                finally:
                    split.add(part, time.perf_counter() - began)

            return wrapper

        torchvision.io.decode_jpeg = timed("decode_jpeg", torchvision.io.decode_jpeg)
        forward = timed("decode_rest", DecodeTensor.forward)

        def decode_forward(kernel: Any, items: Any) -> Any:
            split.count()
            return forward(kernel, items)

        DecodeTensor.forward = decode_forward  # type: ignore[method-assign,assignment]
        ResizeTensor.forward = timed("resize", ResizeTensor.forward)  # type: ignore[method-assign]
        CudaBinding.complete = timed("complete", CudaBinding.complete)  # type: ignore[method-assign]

    def add(self, part: str, seconds: float) -> None:
        with self._lock:
            self.seconds[part] += seconds

    def count(self) -> None:
        with self._lock:
            self.batches += 1

    def take(self) -> dict[str, float]:
        """ms per decode batch since the last call, by part (``decode_rest`` net of
        ``decode_jpeg``)."""
        with self._lock:
            seconds, batches = self.seconds, max(1, self.batches)
            self.seconds, self.batches = dict.fromkeys(self.PARTS, 0.0), 0
        seconds["decode_rest"] -= seconds["decode_jpeg"]
        return {part: round(1e3 * s / batches, 3) for part, s in seconds.items()}


def burn(duty: float, stop: threading.Event) -> None:
    """Hold the GIL ``duty`` of the time in 0.3 ms stretches of pure Python, as a busy
    event loop does between its waits."""
    busy = 0.0003
    rest = busy * (1 - duty) / duty
    while not stop.is_set():
        began = time.perf_counter()
        while time.perf_counter() - began < busy:
            pass
        time.sleep(rest)


def joint_rate(
    spec: tw.GraphSpec, images: list[bytes], warmup: float, seconds: float, burner: float = 0.0
) -> dict[str, Any]:
    """img/s of the graph's ``decode`` -> ``resnet50`` run by plain threads, with a thread
    holding the GIL ``burner`` of the time beside them (0: none)."""
    decode_spec, model_spec = spec.node("decode"), spec.node("resnet50")
    handoff: queue.Queue[list[dict[str, Any]]] = queue.Queue(maxsize=2 * model_spec.instance_num)
    stop = threading.Event()
    ready = threading.Barrier(decode_spec.instance_num + model_spec.instance_num + 1)
    setup_lock = threading.Lock()  # one compile at a time; the next instance hits its cache
    decode, model = Stage(decode_spec.instance_num), Stage(model_spec.instance_num)
    failures: list[BaseException] = []

    def fail(exc: BaseException) -> None:
        if not isinstance(exc, threading.BrokenBarrierError):  # another thread's failure
            failures.append(exc)
        stop.set()
        ready.abort()

    def instance(node: Any, index: int) -> tuple[Any, CudaBinding, InstanceContext]:
        kernel, _ = node_kernel(node)
        binding = CudaBinding(
            str(node.params.get("completion", "event")),
            str(node.params.get("stream_priority", "normal")),
        )
        ctx = InstanceContext(node.name, index, node.instance_num, "cuda:0")
        ctx = binding.enter(ctx)
        with setup_lock, binding.batch_scope(ctx):
            return kernel.setup(ctx), binding, ctx

    def decoder(index: int) -> None:
        try:
            kernel, binding, ctx = instance(decode_spec, index)
            n, offset = decode_spec.max or kernel.max_batch, 7 * index
            ready.wait()
            while not stop.is_set():
                items = [{"data": images[(offset + k) % len(images)]} for k in range(n)]
                offset += n
                decode.run(index, kernel, binding, ctx, items)
                for item in items:
                    item["data"] = item.pop("result")
                began = time.perf_counter()
                while not stop.is_set():
                    try:
                        handoff.put(items, timeout=0.05)
                        break
                    except queue.Full:
                        continue
                decode.wait_s[index] += time.perf_counter() - began
        except BaseException as exc:
            fail(exc)

    def modeller(index: int) -> None:
        try:
            kernel, binding, ctx = instance(model_spec, index)
            limit = model_spec.max or kernel.max_batch
            carried: list[dict[str, Any]] = []  # a batch that did not fit under the limit
            ready.wait()
            while not stop.is_set():
                began = time.perf_counter()
                if carried:
                    items, carried = carried, []
                else:
                    try:
                        items = handoff.get(timeout=0.05)
                    except queue.Empty:
                        continue
                while len(items) < limit:  # whatever else is queued, no waiting
                    try:
                        more = handoff.get_nowait()
                    except queue.Empty:
                        break
                    if len(items) + len(more) > limit:
                        carried = more
                        break
                    items += more
                model.wait_s[index] += time.perf_counter() - began
                model.run(index, kernel, binding, ctx, items)
        except BaseException as exc:
            fail(exc)

    threads = [
        threading.Thread(target=decoder, args=(i,), name=f"decode-{i}")
        for i in range(decode_spec.instance_num)
    ] + [
        threading.Thread(target=modeller, args=(i,), name=f"resnet50-{i}")
        for i in range(model_spec.instance_num)
    ]
    if burner:
        threads.append(threading.Thread(target=burn, args=(burner, stop), name="burner"))
    for t in threads:
        t.start()
    try:
        ready.wait()
        time.sleep(warmup)
        before = decode.snapshot(), model.snapshot()
        began = time.perf_counter()
        time.sleep(seconds)
        elapsed = time.perf_counter() - began
        after = decode.snapshot(), model.snapshot()
    except threading.BrokenBarrierError:
        pass
    finally:
        stop.set()
        for t in threads:
            t.join()
    if failures:
        raise failures[0]
    report: dict[str, Any] = {}
    for name, old, new, count in (
        ("decode", before[0], after[0], decode_spec.instance_num),
        ("resnet50", before[1], after[1], model_spec.instance_num),
    ):
        batches, items, busy, wait = (b - a for a, b in zip(old, new, strict=True))
        report[name] = {
            "mean_batch": round(items / max(1, batches), 1),
            "busy_instance_pct": round(100 * busy / elapsed / count, 1),
            "mean_run_ms": round(1e3 * busy / max(1, batches), 2),
            "waiting_pct": round(100 * wait / elapsed / count, 1),
        }
    report["img_per_s"] = (after[1][1] - before[1][1]) / elapsed
    return report


def parse_variant(variant: str) -> tuple[str, list[str], float]:
    """``threads`` or ``service``, its graph settings (``decode.instance_num=3``,
    ``runtime.clients=512``, as ``gpu_pipeline_profile.py`` takes them) and the duty of a
    GIL-holding thread beside the plain threads (``burner=DUTY``; 0: none)."""
    name, *parts = variant.split("+")
    duty = 0.0
    settings = []
    for part in parts:
        if part.startswith("burner="):
            if name != "threads":
                raise SystemExit(f"burner= is for the threads variant, not {variant!r}")
            duty = float(part.removeprefix("burner="))
        else:
            settings.append(part)
    if name not in ("threads", "service"):
        raise SystemExit(f"unknown variant {variant!r}")
    return name, settings, duty


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_service_arguments(parser)
    parser.add_argument(
        "--variants",
        default="threads,service",
        help="threads or service, each with +NODE.KEY=VALUE settings (service with "
        "+runtime.clients=N too); threads+burner=DUTY adds a GIL-holding thread beside them",
    )
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--split", action="store_true", help="time the parts of a decode batch")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--clients", type=int, default=256)
    parser.add_argument("--switch-interval", type=float, default=0.0005)
    parser.add_argument("--timeline", type=float, default=0.0)
    parser.add_argument("--long-side", type=int, default=500)
    parser.add_argument("--sizes", type=int, default=1, help="sizes per photo (imagenet_like)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.decode != "gpu":
        raise SystemExit("the joint ceiling is for the GPU-decode service (--decode gpu)")

    images = sample_image_bytes()
    if args.long_side:
        images = imagenet_like(images, args.long_side, args.sizes)
    sys.setswitchinterval(args.switch_interval)
    split = Split() if args.split else None
    if split is not None:
        split.install()
    results: list[dict[str, Any]] = []
    for r in range(1, args.rounds + 1):
        threads_rate = None
        for variant in args.variants.split(","):
            name, settings, duty = parse_variant(variant)
            if split is not None:
                split.take()
            if name == "threads":
                spec, _ = variant_graph("+".join(["service", *settings]), args)
                report = joint_rate(spec, images, args.warmup, args.seconds, duty)
                nodes = {k: v for k, v in report.items() if k != "img_per_s"}
            elif name == "service":
                service = tw.run(one("+".join(["service", *settings]), args, images))
                report = {"img_per_s": service["img_per_s"], "nodes": service["nodes"]}
                nodes = service["nodes"]
            if split is not None:
                report["decode_batch_ms"] = split.take()
            rate = report["img_per_s"]
            threads_rate = threads_rate or (rate if variant == "threads" else None)
            versus = f" ({rate / threads_rate:.1%} of threads)" if threads_rate else ""
            print(f"round {r}, {variant}: {rate:,.0f} img/s{versus}; {json.dumps(nodes)}")
            if split is not None:
                print(f"  decode batch, ms: {json.dumps(report['decode_batch_ms'])}")
            sys.stdout.flush()
            results.append({"round": r, "variant": variant, **report})
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {"args": vars(args) | {"json": str(args.json)}, "results": results}, indent=1
            )
            + "\n"
        )


if __name__ == "__main__":
    main()
