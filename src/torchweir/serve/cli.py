"""``torchweir serve CONFIG``: serve a graph over HTTP until SIGTERM or Ctrl-C, then drain.

Binds to 127.0.0.1 unless ``--host`` says otherwise: a model server should not be
reachable from the network by accident. Once the runtime has started (every instance
set up and warmed up), it prints ``torchweir serve: listening on http://HOST:PORT`` on
stdout (the bound port, with ``--port 0``).

On SIGTERM or SIGINT it stops listening (new connections are refused), lets the
requests in flight finish (up to ``--drain-timeout``), closes the runtime, and exits 0.

``torchweir.cli`` adds these options to its ``serve`` subcommand with
:func:`add_arguments` and calls :func:`main`; ``python -m torchweir.serve.cli CONFIG``
runs it alone. Exit status: 0 stopped cleanly; 1 the address could not be bound;
2 bad arguments or config (one line on stderr).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import signal
import sys
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, TextIO

from torchweir.errors import ConfigError

if TYPE_CHECKING:
    from aiohttp import web

__all__ = ["add_arguments", "main", "parse_size"]

_UNITS = {
    "": 1, "b": 1,
    "kb": 10**3, "mb": 10**6, "gb": 10**9,
    "k": 2**10, "kib": 2**10, "m": 2**20, "mib": 2**20, "g": 2**30, "gib": 2**30,
}  # fmt: skip
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*")


def parse_size(text: str) -> int:
    """Bytes from ``"8MiB"``, ``"512KiB"``, ``"1.5GB"`` or ``"1000000"``.

    ``KiB``/``MiB``/``GiB`` (and ``K``/``M``/``G``) are powers of 1024; ``KB``/``MB``/``GB``
    are powers of 1000, as their SI prefixes say.

    Raises:
        ValueError: ``text`` is not such a size, or is below one byte.
    """
    match = _SIZE.fullmatch(text)
    unit = _UNITS.get(match.group(2).lower()) if match else None
    if match is None or unit is None:
        raise ValueError(f"expected a size like 8MiB, 512KiB or 1000000, got {text!r}")
    size = int(float(match.group(1)) * unit)
    if size < 1:
        raise ValueError(f"a size must be at least 1 byte, got {text!r}")
    return size


def _size_arg(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _seconds_arg(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected seconds > 0, got {text!r}")
    return value


def _port_arg(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"expected a port 0-65535 (0: any free), got {text!r}")
    return int(text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``serve`` options to ``parser`` (a subcommand's, or a standalone one)."""
    parser.add_argument("config", help="a torchpipe-style TOML graph")
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: loopback only)"
    )
    parser.add_argument(
        "--port", type=_port_arg, default=8095, help="port (default 8095; 0 picks a free one)"
    )
    parser.add_argument(
        "--max-body", type=_size_arg, default=8 * 2**20, metavar="SIZE",
        help="largest request body, e.g. 8MiB, 512KiB, 1000000 (default 8MiB); 413 above",
    )  # fmt: skip
    parser.add_argument(
        "--timeout", type=_seconds_arg, metavar="S",
        help="seconds each request may take before a 504 (default: no limit)",
    )  # fmt: skip
    parser.add_argument(
        "--overflow", choices=("wait", "reject"), default="wait",
        help="a full entry mailbox makes requests wait (default) or fail at once with 503",
    )  # fmt: skip
    parser.add_argument(
        "--drain-timeout", type=_seconds_arg, default=30.0, metavar="S",
        help="on SIGTERM, seconds requests in flight get to finish (default 30)",
    )  # fmt: skip


def main(
    args: argparse.Namespace, *, stdout: TextIO | None = None, stderr: TextIO | None = None
) -> int:
    """Serve the graph that ``args`` (from :func:`add_arguments`) names until signalled.

    Returns:
        The exit status (see the module docstring).
    """
    from torchweir.runtime.loop import run
    from torchweir.runtime.runtime import Runtime

    out = stdout if stdout is not None else sys.stdout
    err = stderr if stderr is not None else sys.stderr
    try:
        from torchweir.serve.app import make_app
    except ImportError as exc:
        err.write(
            f"torchweir serve: error: {exc}; install it with: pip install 'torchweir[serve]'\n"
        )
        return 2
    try:
        runtime = Runtime(args.config, overflow=args.overflow, drain_timeout=args.drain_timeout)
    except ConfigError as exc:
        err.write(f"torchweir serve: error: {exc}\n")
        return 2
    app = make_app(runtime, timeout=args.timeout, max_body=args.max_body)
    return run(_serve(app, args.host, args.port, args.drain_timeout, out, err))


async def _serve(
    app: web.Application, host: str, port: int, drain_s: float, out: TextIO, err: TextIO
) -> int:
    from aiohttp import web

    runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=drain_s)
    try:
        await runner.setup()  # starts the runtime: kernels set up and warm up here
        await web.TCPSite(runner, host, port).start()
    except ConfigError as exc:
        await runner.cleanup()
        err.write(f"torchweir serve: error: {exc}\n")
        return 2
    except OSError as exc:
        await runner.cleanup()
        err.write(f"torchweir serve: error: cannot listen on {host}:{port}: {exc}\n")
        return 1
    stop = asyncio.Event()
    with _stopped_by_signals(stop):
        try:
            out.write(f"torchweir serve: listening on {_url(runner.addresses[0])}\n")
            out.flush()
            await stop.wait()
            err.write("torchweir serve: stopping; draining the requests in flight\n")
            err.flush()
        finally:  # refuse new connections, finish the handlers, close the runtime
            await runner.cleanup()
    err.write("torchweir serve: stopped\n")
    return 0


def _url(address: Any) -> str:
    host, port = address[0], address[1]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


@contextlib.contextmanager
def _stopped_by_signals(stop: asyncio.Event) -> Iterator[None]:
    """While inside, SIGTERM and SIGINT set ``stop`` (again and again: a second signal
    during the drain does not cut it short)."""
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


def _standalone(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m torchweir.serve.cli", description="Serve a torchweir graph over HTTP."
    )
    add_arguments(parser)
    return main(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(_standalone())
