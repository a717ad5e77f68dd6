"""torchpipe-style TOML graphs: load them, and write specs back.

Top-level keys are defaults that every node inherits (a node's own keys win); each table
is a node. ``entry`` is the one top-level key that belongs to the graph, not the nodes:
where requests without ``node_name`` enter when the graph has several roots.
"""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path
from typing import Any

from torchweir.errors import ConfigError
from torchweir.graphs.spec import DEFAULT_MAX_QUEUE, GraphSpec, NodeSpec
from torchweir.graphs.validate import node_spec, split_node_keys, validate

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = ["dump_toml", "load_toml", "loads_toml"]

#: Top-level keys that describe the graph instead of being inherited by every node.
GRAPH_KEYS = frozenset({"entry"})
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def load_toml(path: str | Path) -> GraphSpec:
    """Load and validate the graph in a TOML file.

    Raises:
        ConfigError: the file is missing, is not TOML, or describes an invalid graph; the
            message names the file.
    """
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read the config: {exc.strerror or exc}", file=file) from None
    return loads_toml(text, file=file, base=Path(path).parent)


def loads_toml(text: str, *, file: str | None = None, base: Path | None = None) -> GraphSpec:
    """Load and validate a graph from TOML text.

    Args:
        file: names the source in errors.
        base: the config's folder. A relative ``model`` path that exists there is made
            absolute, so a config finds its model from any working directory (torchpipe
            resolves against the working directory, which still applies otherwise).
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", file=file) from None
    defaults = {key: value for key, value in data.items() if not isinstance(value, dict)}
    entry = defaults.pop("entry", "")
    if not isinstance(entry, str):
        raise ConfigError(f"expected a node name, got {entry!r}", file=file, key="entry")
    nodes = []
    for name, table in data.items():
        if not isinstance(table, dict):
            continue
        for key, value in table.items():
            if isinstance(value, dict):
                raise ConfigError(
                    f"nested table [{name}.{key}] (a torchpipe logical node) is not supported",
                    file=file,
                    node=name,
                    key=key,
                )
        raw = {"backend": "Identity", **defaults, **table}
        if base is not None:
            raw = _resolve_model_path(raw, base)
        nodes.append(node_spec(name, split_node_keys(raw), file=file))
    graph = GraphSpec(nodes=tuple(nodes), entry=entry)
    validate(graph, file=file)
    return graph


def _resolve_model_path(raw: dict[str, Any], base: Path) -> dict[str, Any]:
    model = raw.get("model")
    if isinstance(model, str) and model and not Path(model).is_absolute():
        beside = base / model
        if beside.exists():
            return {**raw, "model": str(beside.resolve())}
    return raw


def dump_toml(graph: GraphSpec) -> str:
    """Write ``graph`` as TOML that :func:`loads_toml` reads back to an equal spec."""
    lines = []
    if graph.entry:
        lines.append(f"entry = {_value(graph.entry)}")
    for spec in graph.nodes:
        if spec.kernel is not None:
            raise ConfigError(
                "holds a Python kernel object, which TOML cannot name; register it with "
                "tw.register_kernel(name, kernel) and use backend=name",
                node=spec.name,
                key="backend",
            )
        if lines:
            lines.append("")
        lines.append(f"[{_key(spec.name)}]")
        lines.extend(f"{_key(key)} = {_value(value)}" for key, value in _node_items(spec))
    return "\n".join(lines) + "\n"


def _node_items(spec: NodeSpec) -> list[tuple[str, Any]]:
    items: list[tuple[str, Any]] = [("backend", spec.backend)]
    if spec.next:
        items.append(("next", ",".join(spec.next)))
    for key, value, default in (
        ("map", spec.map, ""),
        ("filter", spec.filter, ""),
        ("instance_num", spec.instance_num, 1),
        ("batching_timeout", spec.batching_timeout, 0.0),
        ("max", spec.max_shape or spec.max, None),
        ("min", spec.min_shape or spec.min, None),
        ("max_queue", spec.max_queue, DEFAULT_MAX_QUEUE),
    ):
        if value != default:
            items.append((key, value))
    items.extend(spec.params.items())
    return items


def _key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else json.dumps(key)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(item) for item in value) + "]"
    if isinstance(value, dict):
        inner = ", ".join(f"{_key(str(k))} = {_value(v)}" for k, v in value.items())
        return "{" + inner + "}"
    raise ConfigError(f"cannot write {type(value).__name__} value {value!r} to TOML")
