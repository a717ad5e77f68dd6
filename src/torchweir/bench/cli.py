"""``torchweir bench``: the command-line face of :func:`torchweir.bench.run`.

``torchweir.cli`` adds these options to its ``bench`` subcommand with
:func:`add_arguments` and calls :func:`main`, passing the built-in default target and the
naive baseline as factories. ``python -m torchweir.bench.cli CONFIG ...`` runs it alone.
With ``--url`` it measures a running ``torchweir serve`` over HTTP instead; CONFIG is
then needed only by ``--baseline naive``, to know which graph the server runs.

Exit status: 0 done; 1 some point had no successful call (the table says why); 2 bad
arguments, config or inputs (one line on stderr, no traceback); 130 interrupted (Ctrl-C),
after printing what was measured.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from torchweir.bench.api import run
from torchweir.bench.inputs import SYNTHETIC_SPECS, load_images, synthetic
from torchweir.bench.report import check_plot, plot, table, to_json
from torchweir.bench.result import BenchResult
from torchweir.bench.targets import RuntimeTarget, Target
from torchweir.errors import ConfigError

__all__ = ["add_arguments", "main"]

EXIT_INTERRUPTED = 130


def _ints(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        values = ()
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected integers >= 1 like 1,10,64, got {text!r}")
    return values


def _rates(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if not values or not all(0 < v < float("inf") for v in values):
        raise argparse.ArgumentTypeError(f"expected calls/s > 0 like 200 or 100,400, got {text!r}")
    return values


def _positive(kind: type[int] | type[float]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            value = 0
        if not value > 0:
            raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
        return value

    return parse


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected seconds >= 0, got {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``bench`` options to ``parser`` (a subcommand's, or a standalone one)."""
    parser.add_argument(
        "config", nargs="?", help="a torchpipe-style TOML graph (default: the built-in one)"
    )
    parser.add_argument(
        "--url", metavar="URL",
        help="measure a `torchweir serve` server over HTTP, e.g. http://127.0.0.1:8095",
    )  # fmt: skip
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--images", type=Path, metavar="DIR", help="send these images")
    source.add_argument("--input", metavar="SPEC", help=f"synthetic inputs: {SYNTHETIC_SPECS}")
    parser.add_argument(
        "--max-images", type=_positive(int), default=1024, metavar="N",
        help="load at most the first N images by name (default 1024)",
    )  # fmt: skip
    load = parser.add_mutually_exclusive_group()
    load.add_argument(
        "--clients", type=_ints, default=(1, 10, 64), metavar="N[,N...]",
        help="closed loop: concurrent clients, one point each (default 1,10,64)",
    )  # fmt: skip
    load.add_argument(
        "--rate", type=_rates, metavar="R[,R...]",
        help="open loop instead: Poisson arrivals of R calls/s, one point each",
    )  # fmt: skip
    window = parser.add_mutually_exclusive_group()
    window.add_argument(
        "--seconds", type=_positive(float), default=10.0, metavar="S",
        help="measured seconds per point (default 10)",
    )  # fmt: skip
    window.add_argument(
        "--requests", type=_positive(int), metavar="N", help="measured calls per point instead"
    )
    parser.add_argument(
        "--request-batch", type=_positive(int), default=1, metavar="K",
        help="items per call, sent with submit_many (default 1)",
    )  # fmt: skip
    parser.add_argument(
        "--warmup", type=_non_negative, default=2.0, metavar="S",
        help="unmeasured seconds of load before each point (default 2)",
    )  # fmt: skip
    parser.add_argument(
        "--max-outstanding", type=_positive(int), default=10_000, metavar="N",
        help="open loop: calls in flight beyond which arrivals are dropped (default 10000)",
    )  # fmt: skip
    parser.add_argument(
        "--late-ms", type=_non_negative, default=2.0, metavar="MS",
        help="open loop: a send this far behind schedule counts as late (default 2)",
    )  # fmt: skip
    parser.add_argument(
        "--baseline", choices=("naive",),
        help="also measure the naive thread-per-request service, in the same run",
    )  # fmt: skip
    parser.add_argument("--json", type=Path, metavar="PATH", help="write every point as JSON")
    parser.add_argument(
        "--plot", type=Path, metavar="PATH", help="write latency CDFs, QPS and TP99 as a PNG"
    )
    parser.add_argument("--no-progress", action="store_true", help="no live progress display")


def main(
    args: argparse.Namespace,
    default_target: Callable[[], Target] | None = None,
    naive_factory: Callable[[str | None], Target] | None = None,
    *,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run the benchmark that ``args`` (from :func:`add_arguments`) describes.

    Args:
        default_target: builds the target when no CONFIG is given.
        naive_factory: builds the ``--baseline naive`` target for CONFIG (``None`` when
            the default target is used).

    Returns:
        The exit status (see the module docstring).
    """
    out = stdout if stdout is not None else sys.stdout
    err = stderr if stderr is not None else sys.stderr
    try:
        result = _measure(args, default_target, naive_factory, err)
    except ConfigError as exc:
        err.write(f"torchweir bench: error: {exc}\n")
        return 2
    except KeyboardInterrupt:
        err.write("torchweir bench: interrupted before any point was measured\n")
        return EXIT_INTERRUPTED
    out.write(table(result) + "\n")
    out.flush()
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_bytes(to_json(result))
        err.write(f"torchweir bench: wrote {args.json}\n")
    if args.plot is not None and result.points:
        plot(result, args.plot)
        err.write(f"torchweir bench: wrote {args.plot}\n")
    return _status(result, err)


def _measure(
    args: argparse.Namespace,
    default_target: Callable[[], Target] | None,
    naive_factory: Callable[[str | None], Target] | None,
    err: TextIO,
) -> BenchResult:
    if args.plot is not None:
        check_plot()
    inputs = _inputs(args)
    targets = _targets(args, default_target, naive_factory)
    return run(
        targets,
        inputs,
        clients=args.clients,
        seconds=args.seconds,
        requests=args.requests,
        request_batch=args.request_batch,
        rate=args.rate,
        warmup=args.warmup,
        progress=not args.no_progress,
        max_outstanding=args.max_outstanding,
        late_tolerance_s=args.late_ms / 1e3,
        command=shlex.join(["torchweir", "bench", *sys.argv[1:]]),
    )


def _inputs(args: argparse.Namespace) -> list[Any]:
    if args.images is not None:
        return load_images(args.images, limit=args.max_images)
    if args.input is not None:
        return synthetic(args.input)
    from torchweir.data import sample_image_bytes

    return sample_image_bytes()


def _targets(
    args: argparse.Namespace,
    default_target: Callable[[], Target] | None,
    naive_factory: Callable[[str | None], Target] | None,
) -> list[Target]:
    if args.url is not None:
        targets: list[Target] = [_http_target(args)]
        if args.config is not None and args.baseline is None:
            raise ConfigError("with --url, CONFIG is only used by --baseline naive; drop it")
        if args.baseline == "naive" and args.config is None:
            raise ConfigError("--baseline naive with --url needs CONFIG: the graph the server runs")
    elif args.config is not None:
        targets = [RuntimeTarget(args.config)]
    elif default_target is not None:
        targets = [default_target()]
    else:
        raise ConfigError("give a CONFIG: the path of a TOML graph to benchmark")
    if args.baseline == "naive":
        if naive_factory is None:
            raise ConfigError(
                f"--baseline naive is not available for {args.config or 'this target'}"
            )
        targets.append(naive_factory(args.config))
    return targets


def _http_target(args: argparse.Namespace) -> Target:
    from torchweir.bench.http import HttpTarget

    calls = max(args.clients) if args.rate is None else args.max_outstanding
    try:
        return HttpTarget(args.url, connections=calls * args.request_batch)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _status(result: BenchResult, err: TextIO) -> int:
    if result.interrupted:
        err.write("torchweir bench: interrupted (Ctrl-C); the table shows what was measured\n")
        return EXIT_INTERRUPTED
    failed = [f"{p.target} at {p.load}" for p in result.points if p.stats.requests == 0]
    if failed:
        err.write(f"torchweir bench: no call succeeded for {', '.join(failed)}\n")
        return 1
    return 0


def _standalone(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m torchweir.bench.cli", description="Benchmark a torchweir graph."
    )
    add_arguments(parser)
    return main(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(_standalone())
