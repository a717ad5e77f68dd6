"""Drawing a graph as Mermaid or Graphviz dot text, and summarising it for ``check``."""

from __future__ import annotations

import json

from torchweir.graphs.spec import GraphSpec, NodeSpec

__all__ = ["to_dot", "to_mermaid"]


def _label_lines(spec: NodeSpec) -> list[str]:
    backend = spec.backend or f"<{type(spec.kernel).__name__}>"
    lines = [spec.name, backend]
    facts = [f"instances {spec.instance_num}"]
    if spec.max is not None:
        facts.append(f"max {spec.max}")
    if spec.batching_timeout:
        facts.append(f"timeout {spec.batching_timeout:g} ms")
    lines.append(", ".join(facts))
    if spec.map:
        lines.append(f"map {spec.map}")
    return lines


def _edge_label(child: NodeSpec) -> str:
    return child.filter


def to_mermaid(graph: GraphSpec) -> str:
    """A Mermaid ``flowchart`` (paste into Markdown or mermaid.live)."""
    ids = {name: f"n{i}" for i, name in enumerate(graph.names)}
    lines = ["flowchart LR"]
    for spec in graph.nodes:
        label = "<br/>".join(line.replace('"', "#quot;") for line in _label_lines(spec))
        lines.append(f'    {ids[spec.name]}["{label}"]')
    for spec in graph.nodes:
        for child in spec.next:
            label = _edge_label(graph.node(child))
            arrow = f"-->|{label}|" if label else "-->"
            lines.append(f"    {ids[spec.name]} {arrow} {ids[child]}")
    return "\n".join(lines) + "\n"


def to_dot(graph: GraphSpec) -> str:
    """A Graphviz digraph (``torchweir graph g.toml --format dot | dot -Tpng``)."""
    lines = ["digraph torchweir {", "    rankdir=LR;", "    node [shape=box];"]
    for spec in graph.nodes:
        label = "\\n".join(
            line.replace("\\", "\\\\").replace('"', '\\"') for line in _label_lines(spec)
        )
        lines.append(f'    {json.dumps(spec.name)} [label="{label}"];')
    for spec in graph.nodes:
        for child in spec.next:
            label = _edge_label(graph.node(child))
            attrs = f" [label={json.dumps(label)}]" if label else ""
            lines.append(f"    {json.dumps(spec.name)} -> {json.dumps(child)}{attrs};")
    lines.append("}")
    return "\n".join(lines) + "\n"
