"""Profile the ResNet-50 service and its parts at high load, thread by thread.

Each variant runs a closed loop of ``--clients`` clients on one event loop, as the
harness does, and reports img/s with the per-thread CPU, the Python stacks and the event
loop's lag (see ``thread_profile.py``), plus each node's mean batch and how busy its
instances were. The variants take the pipeline apart so that each stage's cost, with the
runtime around it, is measured on its own:

* ``service``: ``decode`` (``S[DecodeTensor,ResizeTensor]``) -> ``resnet50``;
* ``decode-only``: the decode node alone;
* ``model-only``: the model node alone, fed decoded 3x224x224 uint8 host tensors;
* ``identity``: two ``Identity`` nodes, the runtime's own cost on this machine;
* ``merged``: one node whose kernel is the decode node's, then the model's
  (``S[S[DecodeTensor,ResizeTensor],TorchModel]``), with the decode node's
  ``instance_num`` and ``max``: no hand-off through the event loop between the stages.

A variant may carry node settings after ``+`` (``service+decode.instance_num=3``,
``decode.backend=DecodeTensor``), the runtime's GIL switch interval
(``service+runtime.switch_interval=0.0001``) or the number of clients
(``service+runtime.clients=512``), so that A/B runs interleave in one process:
``--variants service,service+decode.max=32,service,...``. ``--hops`` times each batch's
crossings between the event loop and the instance threads (``handoff_hops.py``), next to
the clients' mean latency.

Usage (on the GPU machine)::

    python benchmarks/gpu_pipeline_profile.py --variants service,decode-only --json out.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import msgspec

import gil_accounting
import torchweir as tw
from gpu_timeline import Timeline
from handoff_hops import Hops
from thread_profile import ThreadProfile, print_report
from torchweir.bench.resnet50 import service_graph
from torchweir.data import sample_image_bytes
from torchweir.kernels.compose import Sequential
from torchweir.kernels.cpu.reference import preprocess_reference
from torchweir.runtime.build import node_kernel

#: Settings that are fields of the node, not kernel parameters, and their types.
NODE_FIELDS: dict[str, type] = {
    "instance_num": int,
    "max": int,
    "batching_timeout": float,
    "backend": str,
}


def variant_graph(variant: str, args: argparse.Namespace) -> tuple[tw.GraphSpec, str]:
    """The graph of a variant and the kind of input it takes (``jpeg`` or ``tensor``)."""
    name, *settings = variant.split("+")
    common: dict[str, Any] = {
        "decode": args.decode,
        "decode_instances": args.decode_instances or None,
        "model_instances": args.model_instances,
        "model_timeout_ms": args.model_timeout,
        "max_batch": args.max_batch,
    }
    if args.device:
        common["device"] = args.device
    if args.model_compile:
        common["compile"] = args.model_compile
        common["compile_dynamic"] = args.compile_dynamic
    service = service_graph(**common).spec()
    for setting in [*args.set, *settings]:
        if setting.startswith("runtime."):
            continue  # read by one()
        node_name, _, rest = setting.partition(".")
        key, _, value = rest.partition("=")
        nodes = tuple(
            (
                msgspec.structs.replace(n, **{key: NODE_FIELDS[key](value)})
                if key in NODE_FIELDS
                else msgspec.structs.replace(n, params={**n.params, key: value})
            )
            if n.name == node_name
            else n
            for n in service.nodes
        )
        service = msgspec.structs.replace(service, nodes=nodes)
    if args.completion:
        nodes = tuple(
            msgspec.structs.replace(n, params={**n.params, "completion": args.completion})
            for n in service.nodes
        )
        service = msgspec.structs.replace(service, nodes=nodes)
    if name == "service":
        return service, "jpeg"
    if name in ("decode-only", "model-only"):
        node = service.node("decode" if name == "decode-only" else "resnet50")
        alone = msgspec.structs.replace(node, next=())
        return tw.GraphSpec(nodes=(alone,)), "jpeg" if name == "decode-only" else "tensor"
    if name == "merged":
        decode, model = service.node("decode"), service.node("resnet50")
        steps = [("", node_kernel(decode)[0]), ("", node_kernel(model)[0])]
        merged = msgspec.structs.replace(decode, kernel=Sequential(steps), backend="", next=())
        return tw.GraphSpec(nodes=(merged,)), "jpeg"
    if name == "identity":
        g = tw.Graph()
        g.node("a", "Identity") >> g.node("b", "Identity")
        return g.spec(), "jpeg"
    raise SystemExit(f"unknown variant {name!r}")


def runtime_settings(variant: str, args: argparse.Namespace) -> tuple[float, int]:
    """The GIL switch interval (0: Python's own) and the client count for ``variant``:
    ``--switch-interval`` and ``--clients`` unless it carries ``runtime.`` settings."""
    switch, clients = args.switch_interval, args.clients
    for setting in variant.split("+")[1:]:
        key, _, value = setting.partition("=")
        if key == "runtime.switch_interval":
            switch = float(value)
        elif key == "runtime.clients":
            clients = int(value)
        elif key.startswith("runtime."):
            raise SystemExit(f"unknown runtime setting {key!r} in {variant!r}")
    return switch, clients


async def drive(
    runtime: tw.Runtime,
    inputs: list[Any],
    clients: int,
    warmup: float,
    seconds: float,
    timeline: float = 0.0,
    hops: Hops | None = None,
) -> tuple[float, dict[str, Any]]:
    """Closed loop; img/s, the clients' mean latency and the profile over the measured
    window, then, with ``timeline``, that many seconds of the GPU's kernels
    (``gpu_timeline.py``) while the clients go on (after the window: the profiler's cost
    stays out of the img/s). With ``hops``, each batch's crossings in the window."""
    done = 0
    waited = 0.0
    measuring = False
    stopping = False

    async def client(k: int) -> None:
        nonlocal done, waited
        i = k
        while not stopping:
            sent = time.perf_counter()
            await runtime.submit(inputs[i % len(inputs)])
            i += clients
            if measuring:
                done += 1
                waited += time.perf_counter() - sent

    tasks = [asyncio.create_task(client(k)) for k in range(clients)]
    await asyncio.sleep(warmup)
    profile = ThreadProfile()
    measuring = True
    began = time.perf_counter()
    profile.start(asyncio.get_running_loop())
    before = runtime.statistics()
    gil_before = gil_accounting.snapshot()
    if hops is not None:
        hops.take()
        hops.recording = True
    await asyncio.sleep(seconds)
    measuring = False
    if hops is not None:
        hops.recording = False
    elapsed = time.perf_counter() - began
    gil_after = gil_accounting.snapshot()
    after = runtime.statistics()
    report = profile.stop()
    report["nodes"] = node_summary(before, after, elapsed)
    report["latency_ms"] = round(1e3 * waited / max(1, done), 3)
    if hops is not None:
        report["hops"] = hops.take()
    if gil_before is not None and gil_after is not None:
        report["gil"] = gil_accounting.report(gil_before, gil_after, elapsed)
    if timeline:
        recorder = Timeline()
        first = done
        measuring = True
        recorder.start()
        await asyncio.sleep(timeline)
        measuring = False
        images = done - first
        # CUPTI names a thread by the low 32 bits of its pthread id
        names = {t.ident & 0xFFFFFFFF: t.name for t in threading.enumerate() if t.ident}
        report["timeline"] = recorder.stop(names) | {"images": images}
    stopping = True
    await asyncio.gather(*tasks)
    return done / elapsed, report


def node_summary(before: Any, after: Any, seconds: float) -> dict[str, Any]:
    """Per node, over the window between two statistics snapshots."""
    nodes = {}
    for old, new in zip(before.nodes, after.nodes, strict=True):
        batches = new.batches - old.batches
        items = new.dispatched - old.dispatched
        runs = new.run_time_s.count - old.run_time_s.count
        waits = new.queue_wait_s.count - old.queue_wait_s.count
        busy = new.busy_seconds - old.busy_seconds
        nodes[new.node] = {
            "mean_batch": round(items / batches, 1) if batches else 0,
            "busy_instance_pct": round(100 * busy / seconds / new.instances, 1),
            "mean_run_ms": round(1e3 * (new.run_time_s.sum - old.run_time_s.sum) / max(1, runs), 2),
            "mean_queue_wait_ms": round(
                1e3 * (new.queue_wait_s.sum - old.queue_wait_s.sum) / max(1, waits), 2
            ),
        }
    return nodes


async def one(
    name: str, args: argparse.Namespace, images: list[bytes], hops: Hops | None = None
) -> dict[str, Any]:
    graph, kind = variant_graph(name, args)
    inputs: list[Any] = images
    if kind == "tensor":
        inputs = [preprocess_reference(jpeg, 224, 224, "rgb") for jpeg in images]
    switch, clients = runtime_settings(name, args)
    kwargs = {"switch_interval": switch} if switch else {}
    runtime = tw.Runtime(graph, **kwargs)
    await runtime.start()
    try:
        rate, report = await drive(
            runtime, inputs, clients, args.warmup, args.seconds, args.timeline, hops
        )
    finally:
        await runtime.aclose()
    report["img_per_s"] = rate
    return report


def add_service_arguments(parser: argparse.ArgumentParser) -> None:
    """The options that shape the service graph (read by :func:`variant_graph`)."""
    parser.add_argument("--decode", default="gpu", choices=("cpu", "gpu"))
    parser.add_argument("--decode-instances", type=int, default=0)
    parser.add_argument("--model-instances", type=int, default=2)
    parser.add_argument("--model-timeout", type=float, default=0.0)
    parser.add_argument("--max-batch", type=int, default=256)
    parser.add_argument("--device", default="")
    parser.add_argument("--completion", default="", help="event, spin or callback")
    parser.add_argument(
        "--set", action="append", default=[], help="NODE.KEY=VALUE (decode.stream_priority=high)"
    )
    parser.add_argument("--model-compile", default="", help="a torch.compile mode")
    parser.add_argument("--compile-dynamic", action="store_true")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default="service,decode-only,model-only,identity")
    parser.add_argument("--clients", type=int, default=256)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    add_service_arguments(parser)
    parser.add_argument("--switch-interval", type=float, default=0.0005)
    parser.add_argument(
        "--timeline", type=float, default=0.0, help="seconds of GPU kernel timeline after"
    )
    parser.add_argument("--long-side", type=int, default=500)
    parser.add_argument("--hops", action="store_true", help="time the thread crossings")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    hops = None
    if args.hops:
        hops = Hops()
        hops.install()
    images = sample_image_bytes()
    if args.long_side:
        from gpu_resnet50 import imagenet_like

        images = imagenet_like(images, args.long_side)
    results = {}
    for name in [v for v in args.variants.split(",") if v]:
        report = tw.run(one(name, args, images, hops))
        runs = sum(key.split(" #")[0] == name for key in results)
        results[f"{name} #{runs + 1}" if runs else name] = report  # interleaved repeats
        print(
            f"{name}: {report['img_per_s']:,.0f} img/s, mean latency {report['latency_ms']} ms; "
            f"nodes {json.dumps(report['nodes'])}"
        )
        for node, parts in report.get("hops", {}).items():
            print(f"  hops {node}: {json.dumps(parts)}")
        print_report(report)
        if report.get("gil") == {}:
            print("  GIL accounting: no calls seen in the window")
        for thread, gil in report.get("gil", {}).items():
            print(f"  GIL {thread}: {json.dumps(gil)}")
        if "timeline" in report:
            api = report["timeline"].pop("api", {})
            print(f"  GPU timeline: {json.dumps(report['timeline'])}")
            for thread, calls in api.items():  # ms per second in CUDA calls, by thread
                print(f"    CUDA API {thread}: {json.dumps(calls)}")
        sys.stdout.flush()
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {"args": vars(args) | {"json": str(args.json)}, "results": results},
                indent=1,
                default=str,
            )
            + "\n"
        )


if __name__ == "__main__":
    main()
