"""Graph and node specifications: plain, frozen data that runtimes instantiate.

A TOML file and a Python script build the same :class:`GraphSpec`. Specs hold names and
settings only (plus, for Python graphs, kernel objects); nothing here starts threads or
touches a device.
"""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = ["DEFAULT_MAX_QUEUE", "SCHEDULING_KEYS", "GraphSpec", "NodeSpec"]

#: Default bound of a node's mailbox. Large enough to absorb bursts, small enough that a
#: stalled node makes callers wait instead of exhausting memory.
DEFAULT_MAX_QUEUE = 65536

#: Keys the runtime consumes itself; every other node key goes to the kernel as a param.
SCHEDULING_KEYS = frozenset(
    {
        "backend",
        "next",
        "map",
        "filter",
        "instance_num",
        "batching_timeout",
        "max",
        "min",
        "max_queue",
    }
)


class NodeSpec(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One node of a graph.

    Attributes:
        name: unique within the graph.
        backend: a backend expression such as ``"S[DecodeMat,ResizeMat]"``, resolved by
            the kernel registry; empty when ``kernel`` is given.
        kernel: a kernel object given directly from Python (not serialisable to TOML).
        next: names of the children that receive this node's result.
        map: for joins, ``"parent[src:dst,...],..."``.
        filter: torchpipe's node filter (``Run``, ``Skip``, ``Break``, ``or``, ...).
        instance_num: instance threads.
        batching_timeout: milliseconds the oldest request may wait for batch-mates.
        max: the largest batch; ``None`` takes the kernel's own ``max_batch``. A shape
            such as ``"4x3x224x224"`` sets it to its first number (the batch dimension).
        min: the smallest batch the kernel accepts (TensorRT profiles).
        max_shape: ``max`` as written when it was a shape (``"4x3x224x224"``), for kernels
            that build optimisation profiles from it; else empty.
        min_shape: the same for ``min``.
        max_queue: bound of the node's mailbox.
        params: every other key, passed to the kernel.
    """

    name: str
    backend: str = ""
    kernel: Any = None
    next: tuple[str, ...] = ()
    map: str = ""
    filter: str = ""
    instance_num: int = 1
    batching_timeout: float = 0.0
    max: int | None = None
    min: int | None = None
    max_shape: str = ""
    min_shape: str = ""
    max_queue: int = DEFAULT_MAX_QUEUE
    params: dict[str, Any] = msgspec.field(default_factory=dict)

    def kernel_params(self) -> dict[str, Any]:
        """What a backend's factory receives: the params plus the keys torchpipe's
        backends also read (``instance_num``, ``max``, ``min``)."""
        params = dict(self.params)
        params["instance_num"] = self.instance_num
        for key, number, shape in (
            ("max", self.max, self.max_shape),
            ("min", self.min, self.min_shape),
        ):
            if shape or number is not None:
                params[key] = shape or number
        return params


class GraphSpec(msgspec.Struct, frozen=True, kw_only=True):
    """A whole graph.

    Attributes:
        nodes: the nodes, in declaration order.
        entry: where requests that name no ``node_name`` enter; needed only when the
            graph has several roots (top-level ``entry = "name"`` in TOML).
    """

    nodes: tuple[NodeSpec, ...]
    entry: str = ""

    def to_toml(self) -> str:
        """This graph as torchpipe-style TOML, which loads back to an equal spec.

        Raises:
            ConfigError: a node holds a Python kernel object, which TOML cannot name.
        """
        from torchweir.graphs.toml import dump_toml

        return dump_toml(self)

    def node(self, name: str) -> NodeSpec:
        """The node called ``name``.

        Raises:
            KeyError: no such node.
        """
        for spec in self.nodes:
            if spec.name == name:
                return spec
        raise KeyError(name)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(spec.name for spec in self.nodes)

    def parents(self) -> dict[str, list[str]]:
        """Each node's parents, in declaration order of the parents."""
        result: dict[str, list[str]] = {spec.name: [] for spec in self.nodes}
        for spec in self.nodes:
            for child in spec.next:
                if child in result:
                    result[child].append(spec.name)
        return result

    def children(self) -> dict[str, tuple[str, ...]]:
        return {spec.name: spec.next for spec in self.nodes}

    def roots(self) -> tuple[str, ...]:
        """Nodes that no other node names in ``next``."""
        parents = self.parents()
        return tuple(name for name in self.names if not parents[name])

    def default_entry(self) -> str | None:
        """Where a request that names no node enters, or ``None`` if it must name one."""
        if self.entry:
            return self.entry
        roots = self.roots()
        return roots[0] if len(roots) == 1 else None
