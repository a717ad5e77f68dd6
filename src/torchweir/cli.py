"""The ``torchweir`` command: ``check``, ``graph``, ``bench`` and ``serve`` a config.

Errors in a config are reported as one clear message on stderr with exit status 2, never
as a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from torchweir.errors import ConfigError
from torchweir.graphs.render import to_dot, to_mermaid
from torchweir.graphs.spec import GraphSpec
from torchweir.graphs.toml import load_toml

if TYPE_CHECKING:
    from torchweir.bench.targets import Target

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

    bench = commands.add_parser(
        "bench",
        help="measure QPS and latency (default: the built-in ResNet-50 on the bundled photos)",
    )
    from torchweir.bench import cli as bench_cli

    bench_cli.add_arguments(bench)
    bench.set_defaults(run=_bench)

    serve = commands.add_parser(
        "serve", help="serve a graph over HTTP (aiohttp); drains on SIGTERM"
    )
    from torchweir.serve import cli as serve_cli  # imports no aiohttp

    serve_cli.add_arguments(serve)
    serve.set_defaults(run=_serve)
    return parser


def _serve(args: argparse.Namespace) -> int:
    from torchweir.serve import cli as serve_cli

    return serve_cli.main(args)


def _bench(args: argparse.Namespace) -> int:
    from torchweir.bench import cli as bench_cli

    return bench_cli.main(args, default_target=_builtin_target, naive_factory=_naive_target)


def _builtin_target() -> Target:
    from torchweir.bench.resnet50 import service_graph
    from torchweir.bench.targets import RuntimeTarget

    return RuntimeTarget(service_graph(), name="torchweir")


def _naive_target(config: str | None) -> Target:
    from torchweir.bench.naive import naive_target
    from torchweir.bench.resnet50 import service_graph

    return naive_target(config if config is not None else service_graph())


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
