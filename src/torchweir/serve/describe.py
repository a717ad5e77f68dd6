"""``GET /v1/graph``: the served graph as a JSON document.

Specs from Python scripts hold kernel objects and arbitrary parameter values, which no
client could decode; those are described by their type name instead, so the document is
always plain JSON.
"""

from __future__ import annotations

from typing import Any

import msgspec

from torchweir.graphs.spec import GraphSpec, NodeSpec

__all__ = ["graph_document"]


def _type_name(value: Any) -> str:
    return f"<{type(value).__name__}>"


_ENCODER = msgspec.json.Encoder(enc_hook=_type_name)


def graph_document(graph: GraphSpec) -> bytes:
    """``{"nodes": [...], "edges": [[parent, child], ...], "roots": [...], "entry": ...}``.

    ``entry`` is where a request that names no node enters (``null`` when it must name
    one). Each node lists its scheduling settings and its kernel parameters.
    """
    return _ENCODER.encode(
        {
            "nodes": [_node(spec) for spec in graph.nodes],
            "edges": [[spec.name, child] for spec in graph.nodes for child in spec.next],
            "roots": list(graph.roots()),
            "entry": graph.default_entry(),
        }
    )


def _node(spec: NodeSpec) -> dict[str, Any]:
    node: dict[str, Any] = {
        "name": spec.name,
        "backend": spec.backend,
        "kernel": type(spec.kernel).__name__ if spec.kernel is not None else None,
        "next": list(spec.next),
        "map": spec.map,
        "filter": spec.filter,
        "instance_num": spec.instance_num,
        "batching_timeout_ms": spec.batching_timeout,
        "max": spec.max_shape or spec.max,
        "min": spec.min_shape or spec.min,
        "max_queue": spec.max_queue,
        "params": spec.params,
    }
    name = getattr(spec.kernel, "__name__", None)
    if isinstance(name, str):  # a @tw.kernel function: its name says more than its type
        node["kernel_name"] = name
    return node
