"""The ``torchweir`` command: ``check`` and ``graph`` a config (more subcommands follow).

Errors in a config are reported as one clear message on stderr with exit status 2, never
as a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from torchweir.errors import ConfigError
from torchweir.graphs.render import to_dot, to_mermaid
from torchweir.graphs.spec import GraphSpec
from torchweir.graphs.toml import load_toml

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        status: int = args.run(args)
    except ConfigError as exc:
        print(f"torchweir: error: {exc}", file=sys.stderr)
        return 2
    return status


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="torchweir", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    check = commands.add_parser("check", help="validate a graph and summarise it")
    check.add_argument("config", help="a torchpipe-style TOML file")
    check.set_defaults(run=_check)

    graph = commands.add_parser("graph", help="print a graph as Mermaid or dot")
    graph.add_argument("config", help="a torchpipe-style TOML file")
    graph.add_argument("--format", choices=("mermaid", "dot"), default="mermaid")
    graph.set_defaults(run=_graph)
    return parser


def _check(args: argparse.Namespace) -> int:
    from torchweir.runtime.build import node_kernel

    graph = load_toml(args.config)
    rows: list[tuple[str, ...]] = []
    for spec in graph.nodes:
        kernel, stream = node_kernel(spec)
        batch = spec.max if spec.max is not None else kernel.max_batch
        rows.append(
            (
                spec.name,
                spec.backend,
                str(spec.instance_num),
                str(batch),
                f"{spec.batching_timeout:g}",
                "yes" if stream else "no",
                spec.filter or "-",
                spec.map or "-",
            )
        )
    print(f"{args.config}: OK, {len(rows)} node(s)")
    print(
        _table(
            ("node", "backend", "instances", "max batch", "timeout ms", "stream", "filter", "map"),
            rows,
        )
    )
    print(f"edges: {_edges(graph) or '(none)'}")
    roots = graph.roots()
    entry = graph.default_entry()
    print(f"roots: {', '.join(roots)}; requests without node_name enter at: {entry}")
    return 0


def _graph(args: argparse.Namespace) -> int:
    graph = load_toml(args.config)
    sys.stdout.write(to_mermaid(graph) if args.format == "mermaid" else to_dot(graph))
    return 0


def _edges(graph: GraphSpec) -> str:
    return ", ".join(f"{spec.name} -> {child}" for spec in graph.nodes for child in spec.next)


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in (header, *rows)
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(line.rstrip() for line in lines)


if __name__ == "__main__":
    sys.exit(main())
