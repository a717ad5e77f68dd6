"""The Python graph builder: ``g.node(...)`` and ``a >> b``.

>>> g = Graph()
>>> a = g.node("a", "Identity")
>>> b = g.node("b", "Identity")
>>> _ = a >> b
>>> g.spec().node("a").next
('b',)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, overload

from torchweir.errors import ConfigError
from torchweir.graphs.spec import GraphSpec
from torchweir.graphs.validate import node_spec, split_node_keys, validate
from torchweir.kernels.base import Kernel

__all__ = ["Graph", "NodeRef"]


class NodeRef:
    """A handle on a node being built; ``>>`` draws edges."""

    __slots__ = ("graph", "name")

    def __init__(self, graph: Graph, name: str) -> None:
        self.graph = graph
        self.name = name

    def __repr__(self) -> str:
        return f"<NodeRef {self.name}>"

    @overload
    def __rshift__(self, other: NodeRef) -> NodeRef: ...

    @overload
    def __rshift__(self, other: Sequence[NodeRef]) -> list[NodeRef]: ...

    def __rshift__(self, other: NodeRef | Sequence[NodeRef]) -> NodeRef | list[NodeRef]:
        """``a >> b`` makes ``b`` a child of ``a``; ``a >> [b, c]`` fans out."""
        if isinstance(other, NodeRef):
            self.graph._connect(self, other)
            return other
        targets = list(other)
        for target in targets:
            self.graph._connect(self, target)
        return targets

    def __rrshift__(self, other: Sequence[NodeRef]) -> NodeRef:
        """``[a, b] >> c`` makes ``c`` a child of both (a join; give ``c`` a ``map``)."""
        for source in other:
            self.graph._connect(source, self)
        return self


class Graph:
    """A graph scripted in Python; :meth:`spec` freezes it into a :class:`GraphSpec`.

    Args:
        entry: where requests without ``node_name`` enter, needed only when the graph
            has several roots.
    """

    def __init__(self, *, entry: str = "") -> None:
        self.entry = entry
        self._nodes: dict[str, dict[str, Any]] = {}

    def node(self, name: str, kernel: str | Kernel, /, **params: Any) -> NodeRef:
        """Add a node.

        Args:
            name: unique node name.
            kernel: a backend expression or registered name (``"S[DecodeMat,ResizeMat]"``),
                or a kernel object (``@tw.kernel`` function, :class:`Kernel` instance).
            **params: scheduling keys (``instance_num``, ``max``, ``batching_timeout``,
                ``max_queue``, ``filter``, ``map``) and kernel parameters.

        Raises:
            TypeError: ``kernel`` is neither a string nor a kernel.
            ConfigError: the name is empty or already used.
        """
        if not isinstance(name, str) or not name:
            raise ConfigError(f"node name must be a non-empty string, got {name!r}")
        if name in self._nodes:
            raise ConfigError("a node with this name already exists", node=name)
        given: object = kernel  # checked at run time too: callers may be untyped
        if not isinstance(given, (str, Kernel)):
            hint = " (wrap a function over a batch with @tw.kernel)" if callable(given) else ""
            raise TypeError(
                f"node {name!r}: kernel must be a backend name or a Kernel, "
                f"got {type(given).__name__}{hint}"
            )
        if "next" in params:
            raise ConfigError("draw edges with `a >> b` instead of next=", node=name, key="next")
        entry = split_node_keys(params)
        entry["backend" if isinstance(kernel, str) else "kernel"] = kernel
        entry["next"] = []
        self._nodes[name] = entry
        return NodeRef(self, name)

    def spec(self) -> GraphSpec:
        """Freeze the graph built so far."""
        nodes = tuple(
            node_spec(name, {**entry, "next": tuple(entry["next"])})
            for name, entry in self._nodes.items()
        )
        graph = GraphSpec(nodes=nodes, entry=self.entry)
        validate(graph)
        return graph

    def _connect(self, parent: NodeRef, child: NodeRef) -> None:
        for ref in (parent, child):
            if not isinstance(ref, NodeRef) or ref.graph is not self:
                raise TypeError(f"can only connect nodes of the same Graph, got {ref!r}")
        edges = self._nodes[parent.name]["next"]
        if child.name not in edges:
            edges.append(child.name)
