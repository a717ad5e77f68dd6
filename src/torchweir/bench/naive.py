"""The naive service, built from a graph's own kernels, for ``--baseline naive``.

The seed's "before" service (its section 3.1): each request is handled start to finish
in its own client thread, running every node's kernel on that one request, and the model
runs under one global lock because it is not thread-safe. It computes exactly what the
graph computes, with the same kernel objects, so the comparison measures scheduling
(batching, instances, pipelining), not different code.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from torchweir.bench.targets import ThreadTarget
from torchweir.errors import ConfigError
from torchweir.graphs.builder import Graph
from torchweir.graphs.spec import GraphSpec
from torchweir.graphs.toml import load_toml
from torchweir.kernels.base import InstanceContext, Kernel
from torchweir.kernels.models.base import ModelKernel
from torchweir.kernels.models.tensorrt import TensorrtTensor
from torchweir.runtime.build import node_kernel

__all__ = ["naive_service", "naive_target"]

Step = tuple[str, Kernel, bool]


def naive_service(graph: Graph | GraphSpec | str | Path) -> Callable[[Any], Any]:
    """A per-request function running ``graph``'s chain of kernels, models under a lock.

    Raises:
        ConfigError: the graph is not a chain (fan-out and joins have no naive twin).
    """
    spec = _spec(graph)
    steps = [_step(spec, name) for name in _chain(spec)]
    lock = threading.Lock()
    gpu = any(kernel.device.startswith("cuda") for _, kernel, _ in steps)
    if gpu:
        import torch

        torch.set_num_threads(1)  # the seed's naive GPU service: one CPU thread per request

    def serve(x: Any) -> Any:
        payload: dict[str, Any] = {"data": x}
        for position, (name, kernel, exclusive) in enumerate(steps):
            if position:
                payload["data"] = payload.pop("result")
            with lock if exclusive else contextlib.nullcontext():
                errors = kernel.forward([payload])
                if gpu:
                    _synchronize()
            if errors is not None and errors[0] is not None:
                raise errors[0]
            if "result" not in payload:
                raise ConfigError(f"node {name!r} left no 'result' in the naive service")
        return payload["result"]

    return serve


def naive_target(graph: Graph | GraphSpec | str | Path) -> ThreadTarget:
    """``naive_service(graph)`` as a benchmark target (one thread per client)."""
    return ThreadTarget(naive_service(graph), name="naive")


def _spec(graph: Graph | GraphSpec | str | Path) -> GraphSpec:
    if isinstance(graph, GraphSpec):
        return graph
    if isinstance(graph, Graph):
        return graph.spec()
    return load_toml(graph)


def _chain(spec: GraphSpec) -> Iterator[str]:
    name = spec.default_entry()
    parents = spec.parents()
    while name is not None:
        node = spec.node(name)
        if len(parents[name]) > 1 or len(node.next) > 1 or node.filter:
            raise ConfigError(
                "the naive baseline runs chains of nodes only (no fan-out, joins or filters)",
                node=name,
            )
        yield name
        name = node.next[0] if node.next else None


def _step(spec: GraphSpec, name: str) -> Step:
    kernel, _ = node_kernel(spec.node(name))
    exclusive = isinstance(kernel, (ModelKernel, TensorrtTensor))
    if kernel.device.startswith("cuda"):
        import torch

        stream = torch.cuda.Stream()  # type: ignore[no-untyped-call]
        with torch.cuda.stream(stream):  # CUDA graphs cannot be captured on the default stream
            instance = kernel.setup(InstanceContext(node=name, device="cuda:0", stream=stream))
        torch.cuda.synchronize()
    else:
        instance = kernel.setup(InstanceContext(node=name))
    return name, instance, exclusive


def _synchronize() -> None:
    import torch

    torch.cuda.synchronize()
