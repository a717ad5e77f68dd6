"""Turning raw node settings into specs, and checking a graph, with clear errors.

Every :class:`ConfigError` raised here names the node and key, says what was expected,
and for unknown names suggests the closest match.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any

import msgspec

from torchweir.errors import ConfigError
from torchweir.graphs.spec import GraphSpec, NodeSpec

__all__ = ["closest", "node_spec", "validate"]

_INT_KEYS = {"instance_num": 1, "max": 1, "min": 1, "max_queue": 1}


def closest(name: str, candidates: Iterable[str]) -> str:
    """A ``"; did you mean 'x'?"`` suffix for an unknown name, or ``""``."""
    matches = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f"; did you mean {matches[0]!r}?" if matches else ""


def node_spec(name: str, raw: Mapping[str, Any], *, file: str | None = None) -> NodeSpec:
    """Build a :class:`NodeSpec`, coercing ``"4"`` to ``4`` and naming any bad value."""
    fields = dict(raw)
    for key, lowest in _INT_KEYS.items():
        if fields.get(key) is not None:
            fields[key] = _number(fields[key], int, lowest, name, key, file)
    if "batching_timeout" in fields:
        fields["batching_timeout"] = _number(
            fields["batching_timeout"], float, 0, name, "batching_timeout", file
        )
    try:
        return msgspec.convert({"name": name, **fields}, NodeSpec, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(str(exc), file=file, node=name) from None


def _number(
    value: Any,
    kind: type[int] | type[float],
    lowest: float,
    node: str,
    key: str,
    file: str | None,
) -> Any:
    expected = f"{'an integer' if kind is int else 'a number'} >= {lowest}"
    if isinstance(value, bool):
        raise ConfigError(f"expected {expected}, got {value!r}", file=file, node=node, key=key)
    try:
        number = kind(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise ConfigError(
            f"expected {expected}, got {value!r}", file=file, node=node, key=key
        ) from None
    if isinstance(value, float) and kind is int and number != value:
        raise ConfigError(f"expected {expected}, got {value!r}", file=file, node=node, key=key)
    if not number >= lowest:
        raise ConfigError(f"expected {expected}, got {value!r}", file=file, node=node, key=key)
    return number


def validate(graph: GraphSpec, *, file: str | None = None) -> None:
    """Check names, edges, batch bounds and acyclicity.

    Raises:
        ConfigError: the first problem found, with node, key and a suggestion.
    """
    if not graph.nodes:
        raise ConfigError("the graph has no nodes", file=file)
    names = graph.names
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ConfigError("two nodes share this name", file=file, node=name)
        seen.add(name)
    for spec in graph.nodes:
        _check_node(spec, seen, file)
    _check_acyclic(graph, file)


def _check_node(spec: NodeSpec, names: set[str], file: str | None) -> None:
    if spec.kernel is None and not spec.backend:
        raise ConfigError(
            "expected a backend (or a kernel object)", file=file, node=spec.name, key="backend"
        )
    for child in spec.next:
        if child not in names:
            raise ConfigError(
                f"next names unknown node {child!r}{closest(child, names)}",
                file=file,
                node=spec.name,
                key="next",
            )
        if child == spec.name:
            raise ConfigError(
                "a node cannot be its own next", file=file, node=spec.name, key="next"
            )
    if spec.max is not None and spec.min is not None and spec.max < spec.min:
        raise ConfigError(
            f"expected max >= min, got max={spec.max} < min={spec.min}",
            file=file,
            node=spec.name,
            key="max",
        )


def _check_acyclic(graph: GraphSpec, file: str | None) -> None:
    children = {spec.name: spec.next for spec in graph.nodes}
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        path.append(name)
        for child in children[name]:
            if state.get(child) == 1:
                cycle = " -> ".join([*path[path.index(child) :], child])
                raise ConfigError(
                    f"the graph has a cycle: {cycle}", file=file, node=child, key="next"
                )
            if child not in state:
                visit(child, path)
        path.pop()
        state[name] = 2

    for name in children:
        if name not in state:
            visit(name, [])
