"""``HttpTarget``: the benchmark harness over HTTP gives the reports it gives in-process."""

from __future__ import annotations

import argparse
import asyncio
import io
from typing import Any

import numpy as np
import pytest
from tests.serve.serve_support import server_thread

import torchweir as tw
from torchweir.bench import HttpTarget, RuntimeTarget, table
from torchweir.bench.cli import add_arguments, main
from torchweir.bench.http import HttpError, remote_error
from torchweir.bench.stats import error_name
from torchweir.serve import make_app


@tw.kernel(max=16)
def invert(batch: list[Any]) -> list[Any]:
    """``1 / x`` for numbers (zero fails its request), the length of bytes, arrays as is."""
    out: list[Any] = []
    for x in batch:
        if isinstance(x, (bytes, np.ndarray)):
            out.append(len(x) if isinstance(x, bytes) else x)
        elif x == 0:
            out.append(ZeroDivisionError("division by zero"))
        else:
            out.append(1 / x)
    return out


def graph() -> tw.Graph:
    g = tw.Graph()
    g.node("invert", invert)
    return g


INPUTS = [1, 2, 0, 4, b"four"]
SETTINGS: dict[str, Any] = {"clients": [4], "requests": 200, "warmup": 0, "progress": False}


def test_http_and_in_process_reports_count_the_same_errors() -> None:
    with server_thread(lambda: make_app(tw.Runtime(graph()))) as url:
        over_http = tw.bench.run(HttpTarget(url), INPUTS, request_batch=2, **SETTINGS)
    in_process = tw.bench.run(RuntimeTarget(graph()), INPUTS, request_batch=2, **SETTINGS)
    http_stats, local_stats = over_http.points[0].stats, in_process.points[0].stats
    assert http_stats.errors_by_type == local_stats.errors_by_type
    assert http_stats.errors_by_type == {"KernelError(ZeroDivisionError)": 80}
    assert (http_stats.requests, http_stats.errors) == (local_stats.requests, 80)
    report = table(over_http)
    assert "http" in report
    assert "KernelError(ZeroDivisionError)" in report


@pytest.mark.asyncio
async def test_outcomes_are_decoded_results_and_typed_errors() -> None:
    from tests.serve.serve_support import serving

    async with serving(make_app(tw.Runtime(graph()))) as url:
        target = HttpTarget(url)
        await target.open()
        try:
            tensor = np.arange(6, dtype=np.int16).reshape(2, 3)
            got = await target.call([4, b"abc", 0, tensor])
        finally:
            await target.close()
        missing = HttpTarget(url, node_name="nope")
        await missing.open()
        try:
            (unknown,) = await missing.call([1])
        finally:
            await missing.close()
    assert got[:2] == [0.25, 3]
    assert isinstance(got[2], tw.KernelError)
    assert (got[2].node, error_name(got[2])) == ("invert", "KernelError(ZeroDivisionError)")
    np.testing.assert_array_equal(got[3], tensor)
    assert got[3].dtype == np.int16
    assert isinstance(unknown, tw.UnknownNode)
    assert unknown.node == "nope"


@pytest.mark.parametrize(
    ("status", "error", "kind", "name"),
    [
        (400, {"type": "InputError", "node": "d", "message": "m", "cause": "InputError"},
         tw.InputError, "InputError(InputError)"),
        (400, {"type": "CodecError", "message": "malformed"}, tw.InputError, "InputError"),
        (413, {"type": "PayloadTooLarge", "message": "big"}, tw.InputError, "InputError"),
        (404, {"message": "no such node"}, tw.UnknownNode, "UnknownNode"),
        (503, {"type": "Overloaded", "node": "n", "message": "full"}, tw.Overloaded, "Overloaded"),
        (503, {"type": "RuntimeClosed", "message": "closing"}, tw.RuntimeClosed, "RuntimeClosed"),
        (504, {"message": "slow"}, tw.DeadlineExceeded, "DeadlineExceeded"),
        (500, {"type": "KernelError", "message": "x", "cause": "MadeUpError"}, tw.KernelError,
         "KernelError(MadeUpError)"),
        (502, {"message": "bad gateway"}, HttpError, "HttpError"),
    ],
)  # fmt: skip
def test_remote_errors_map_to_torchweir_types(
    status: int, error: dict[str, Any], kind: type[Exception], name: str
) -> None:
    exc = remote_error(status, error)
    assert type(exc) is kind
    assert error_name(exc) == name
    assert error["message"] in str(exc)


def test_unreachable_server_is_a_config_error() -> None:
    with pytest.raises(tw.ConfigError, match=r"cannot reach a server at http://127\.0\.0\.1:9"):
        asyncio.run(HttpTarget("http://127.0.0.1:9").open())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"url": "127.0.0.1:8095"}, "must start with http:// or https://"),
        ({"url": "http://h", "connections": 0}, "connections must be >= 1 or None, got 0"),
        ({"url": "http://h", "timeout": -1}, "timeout must be > 0 seconds or None, got -1"),
    ],
)
def test_bad_target_settings(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        HttpTarget(**kwargs)


def bench(argv: list[str]) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    out, err = io.StringIO(), io.StringIO()
    status = main(parser.parse_args(argv), stdout=out, stderr=err)
    return status, out.getvalue(), err.getvalue()


def test_bench_cli_url_mode() -> None:
    argv = ["--input", "tensor:1x3x8x8", "--clients", "2", "--requests", "30", "--warmup", "0"]
    with server_thread(lambda: make_app(tw.Runtime(graph()))) as url:
        status, out, err = bench(["--url", url, *argv, "--no-progress"])
    assert (status, err) == (0, "")
    (row,) = [line for line in out.splitlines() if "2 clients" in line]
    assert row.strip("│ ").startswith("http")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--url", "http://127.0.0.1:9", "--baseline", "naive"], "needs CONFIG"),
        (["g.toml", "--url", "http://127.0.0.1:9"], "CONFIG is only used by --baseline naive"),
        (["--url", "ftp://x"], "must start with http:// or https://"),
        (["--url", "http://127.0.0.1:9"], "cannot reach a server at http://127.0.0.1:9"),
    ],
)
def test_bench_cli_url_errors_exit_2(argv: list[str], message: str) -> None:
    status, _, err = bench([*argv, "--no-progress", "--requests", "1", "--warmup", "0"])
    assert status == 2
    assert message in err


def test_calling_a_target_that_is_not_open_raises() -> None:
    with pytest.raises(RuntimeError, match="is not open"):
        asyncio.run(HttpTarget("http://127.0.0.1:9").call([1]))
