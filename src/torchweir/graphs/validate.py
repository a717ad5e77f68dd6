"""Turning raw node settings into specs, and checking a graph, with clear errors.

Every :class:`ConfigError` raised here names the node and key, says what was expected,
and for unknown names suggests the closest match.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from typing import Any

import msgspec

from torchweir.errors import ConfigError
from torchweir.graphs.backend import parse_backend, render_backend
from torchweir.graphs.mapping import parse_map
from torchweir.graphs.spec import SCHEDULING_KEYS, GraphSpec, NodeSpec
from torchweir.graphs.spill import SPILL_KEY, spill_spec
from torchweir.graphs.topology import reachable
from torchweir.kernels import filters, registry
from torchweir.kernels.compose import STRUCTURAL_NAMES
from torchweir.kernels.imports import import_object

__all__ = ["RESERVED_KEYS", "closest", "node_spec", "split_node_keys", "validate"]

_INT_KEYS = {"instance_num": 1, "max": 1, "min": 1, "max_queue": 1}
_SHAPE = re.compile(r"[x,;]")
#: Request keys (torchpipe's TASK_*_KEY) that a node table may not set.
RESERVED_KEYS = frozenset({"data", "result", "node_name"})
_FIELD_KEYS = SCHEDULING_KEYS | RESERVED_KEYS | {"kernel"}


def closest(name: str, candidates: Iterable[str]) -> str:
    """A ``"; did you mean 'x'?"`` suffix for an unknown name, or ``""``.

    The cutoff is lower than difflib's default (0.6) because node names share long
    prefixes and differ in a whole word: ``cpu_posprocess`` vs ``cpu_posdecoder`` is 0.57.
    """
    matches = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.5)
    return f"; did you mean {matches[0]!r}?" if matches else ""


def split_node_keys(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Separate the keys a :class:`NodeSpec` holds from the kernel's params."""
    fields = {key: value for key, value in raw.items() if key in _FIELD_KEYS}
    fields["params"] = {key: value for key, value in raw.items() if key not in _FIELD_KEYS}
    return fields


def node_spec(name: str, raw: Mapping[str, Any], *, file: str | None = None) -> NodeSpec:
    """Build a :class:`NodeSpec` from raw settings (TOML table or ``g.node`` keywords).

    Coerces ``"4"`` to ``4``, splits ``next = "a,b"``, reads ``max = "4x3x224x224"`` as a
    batch of 4, and rewrites the backend in canonical form; names any bad value.
    """
    fields = dict(raw)
    for key in RESERVED_KEYS & fields.keys():
        raise ConfigError(
            f"{key!r} is a request key, not a node setting", file=file, node=name, key=key
        )
    if isinstance(fields.get("next"), str):
        fields["next"] = tuple(part.strip() for part in fields["next"].split(",") if part.strip())
    for key in ("max", "min"):
        value = fields.get(key)
        if isinstance(value, str) and _SHAPE.search(value):
            fields[f"{key}_shape"] = value.strip()
            fields[key] = _batch_of_shape(value, name, key, file)
    for key, lowest in _INT_KEYS.items():
        if fields.get(key) is not None:
            fields[key] = _number(fields[key], int, lowest, name, key, file)
    if "batching_timeout" in fields:
        fields["batching_timeout"] = _number(
            fields["batching_timeout"], float, 0, name, "batching_timeout", file
        )
    if isinstance(fields.get("backend"), str):
        fields["backend"] = render_backend(parse_backend(fields["backend"], node=name, file=file))
    for key in ("map", "filter"):
        if key in fields and not isinstance(fields[key], str):
            raise ConfigError(
                f"expected a string, got {fields[key]!r}", file=file, node=name, key=key
            )
    try:
        return msgspec.convert({"name": name, **fields}, NodeSpec, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(str(exc), file=file, node=name) from None


def _batch_of_shape(value: str, node: str, key: str, file: str | None) -> int:
    """``"4x3x224x224"`` (``,`` between inputs, ``;`` between instances) -> 4."""
    first = value.strip().split(";")[0].split(",")[0].split("x")[0]
    return int(_number(first, int, 1, node, key, file))


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
    """Check a whole graph: names, edges, backends, filters, maps, roots, cycles.

    Raises:
        ConfigError: the first problem found, naming the file, node and key, what was
            expected, and the closest match for an unknown name.
    """
    if not graph.nodes:
        raise ConfigError("the graph has no nodes", file=file)
    seen: set[str] = set()
    for name in graph.names:
        if name in seen:
            raise ConfigError("two nodes share this name", file=file, node=name)
        seen.add(name)
    for spec in graph.nodes:
        _check_node(spec, seen, file)
    _check_acyclic(graph, file)
    parents = graph.parents()
    for spec in graph.nodes:
        _check_inputs(graph, spec, parents[spec.name], file)
    _check_entry(graph, file)


def _check_node(spec: NodeSpec, names: set[str], file: str | None) -> None:
    where = {"file": file, "node": spec.name}
    if spec.kernel is None:
        _check_backend(spec, file)
    _check_spill(spec, file)
    for child in spec.next:
        if child not in names:
            raise ConfigError(
                f"next names unknown node {child!r}{closest(child, names - {spec.name})}",
                key="next",
                **where,
            )
        if child == spec.name:
            raise ConfigError("a node cannot be its own next", key="next", **where)
    if spec.max is not None and spec.min is not None and spec.max < spec.min:
        raise ConfigError(
            f"expected max >= min, got max={spec.max} < min={spec.min}", key="max", **where
        )
    if spec.filter:
        _check_filter(spec.filter, spec, file)


def _check_backend(spec: NodeSpec, file: str | None) -> None:
    if not spec.backend:
        raise ConfigError(
            "expected a backend (or a kernel object)", file=file, node=spec.name, key="backend"
        )
    backend = parse_backend(spec.backend, node=spec.name, file=file)
    for name in backend.names():
        if name in STRUCTURAL_NAMES or registry.is_registered(name):
            continue
        if ":" in name:
            _check_import(name, spec, file)
            continue
        known = [*registry.registered_names(), *STRUCTURAL_NAMES]
        raise ConfigError(
            f"unknown backend {name!r}{closest(name, known)}",
            file=file,
            node=spec.name,
            key="backend",
        )
    for filter_name in backend.filters():
        _check_filter(filter_name, spec, file, key="backend")


def _check_spill(spec: NodeSpec, file: str | None) -> None:
    pool = spill_spec(spec, file=file)
    if pool is None or pool.kernel is not None:
        return
    try:
        _check_backend(pool, file)
    except ConfigError as exc:
        raise ConfigError(exc.detail, file=file, node=spec.name, key=SPILL_KEY) from None


def _check_import(path: str, spec: NodeSpec, file: str | None) -> None:
    try:
        import_object(path)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(
            f"cannot import backend {path!r}: {exc}", file=file, node=spec.name, key="backend"
        ) from None


def _check_filter(name: str, spec: NodeSpec, file: str | None, key: str = "filter") -> None:
    if name in filters.filter_names():
        return
    raise ConfigError(
        f"unknown filter {name!r}{closest(name, filters.filter_names())}",
        file=file,
        node=spec.name,
        key=key,
    )


def _check_inputs(graph: GraphSpec, spec: NodeSpec, parents: list[str], file: str | None) -> None:
    where = {"file": file, "node": spec.name}
    if not parents and spec.filter:
        raise ConfigError(
            f"a root node always runs; remove filter = {spec.filter!r}", key="filter", **where
        )
    if len(parents) > 1 and not spec.map:
        example = ",".join(f"{p}[result:{'data' if i == 0 else p}]" for i, p in enumerate(parents))
        raise ConfigError(
            f"has {len(parents)} parents ({', '.join(parents)}) and no map; say how to build "
            f'its input, e.g. map = "{example}"',
            key="map",
            **where,
        )
    if not spec.map:
        return
    rules = parse_map(spec.map, node=spec.name, file=file)
    if not parents:
        raise ConfigError("a root node has no parents to map from", key="map", **where)
    upstream = _ancestors(graph, spec.name)
    for source, _ in rules:
        if source and source not in upstream:
            raise ConfigError(
                f"map source {source!r} is not a parent of this node (parents: "
                f"{', '.join(parents)}){closest(source, parents)}",
                key="map",
                **where,
            )


def _check_entry(graph: GraphSpec, file: str | None) -> None:
    if graph.entry:
        if graph.entry not in graph.names:
            raise ConfigError(
                f"entry names unknown node {graph.entry!r}{closest(graph.entry, graph.names)}",
                file=file,
                key="entry",
            )
        return
    roots = graph.roots()
    if len(roots) > 1:
        listed = ", ".join(repr(r) for r in roots)
        raise ConfigError(
            f"the graph has {len(roots)} roots ({listed}) and no entry, so a request without "
            f"node_name could not be routed; connect them with next, or set entry = "
            f"{roots[0]!r} at the top level",
            file=file,
            key="entry",
        )


def _ancestors(graph: GraphSpec, name: str) -> set[str]:
    parents = graph.parents()
    return reachable(parents, name) - {name}


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
