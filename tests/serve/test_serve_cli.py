"""``torchweir serve``: its options, its errors, and a SIGTERM that drops nothing accepted."""

from __future__ import annotations

import argparse
import asyncio
import io
import signal
import socket
import sys
from pathlib import Path

import aiohttp
import msgspec
import pytest
from prometheus_client.parser import text_string_to_metric_families

from torchweir.serve.cli import add_arguments, main, parse_size

ROOT = Path(__file__).parents[2]


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("1000000", 1_000_000),
        ("8MiB", 8 * 2**20),
        ("512KiB", 512 * 2**10),
        ("512kib", 512 * 2**10),
        ("2M", 2 * 2**20),
        ("1.5GB", 1_500_000_000),
        ("10KB", 10_000),
        (" 64 B ", 64),
    ],
)
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "MiB", "8XB", "-1", "0", "0.1", "1e3", "8 Mi B"])
def test_parse_size_rejects_and_names_the_value(text: str) -> None:
    with pytest.raises(ValueError, match=repr(text).replace("\\", "\\\\")):
        parse_size(text)


def test_defaults_bind_loopback() -> None:
    args = parse("g.toml")
    assert (args.host, args.port, args.max_body, args.timeout) == (
        "127.0.0.1",
        8095,
        8 * 2**20,
        None,
    )
    args = parse("g.toml", "--max-body", "512KiB", "--timeout", "2.5", "--port", "0")
    assert (args.max_body, args.timeout, args.port) == (512 * 1024, 2.5, 0)


@pytest.mark.parametrize(
    "argv", [["--timeout", "0"], ["--max-body", "lots"], ["--port", "70000"], ["--port", "-1"]]
)
def test_bad_options_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        parse("g.toml", *argv)
    assert exited.value.code == 2
    assert argv[1] in capsys.readouterr().err


def test_bad_config_is_one_line_and_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[a]\nbackend = "NoSuchKernel"\n')
    err = io.StringIO()
    assert main(parse(str(config), "--port", "0"), stdout=io.StringIO(), stderr=err) == 2
    assert err.getvalue().startswith("torchweir serve: error: ")
    assert "NoSuchKernel" in err.getvalue()
    assert err.getvalue().count("\n") == 1


def test_a_kernel_that_fails_to_set_up_is_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "broken.toml"
    config.write_text('[broken]\nbackend = "tests.serve.serve_support:BrokenSetup"\n')
    out, err = io.StringIO(), io.StringIO()
    assert main(parse(str(config), "--port", "0"), stdout=out, stderr=err) == 2
    assert out.getvalue() == ""  # it never listened
    assert "node 'broken'" in err.getvalue()
    assert "no such model file" in err.getvalue()


def test_an_address_in_use_is_exit_1(tmp_path: Path) -> None:
    config = tmp_path / "id.toml"
    config.write_text('[ident]\nbackend = "Identity"\n')
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        err = io.StringIO()
        status = main(parse(str(config), "--port", str(port)), stdout=io.StringIO(), stderr=err)
    assert status == 1
    assert f"cannot listen on 127.0.0.1:{port}" in err.getvalue()


# -- SIGTERM under load ------------------------------------------------------------------

BURST = 40


async def count_arrived(probe: aiohttp.ClientSession, url: str) -> float:
    async with probe.get(f"{url}/metrics") as r:
        text = await r.text()
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "torchweir_node_requests_total"
    )


async def wait_for_arrivals(probe: aiohttp.ClientSession, url: str, n: int) -> None:
    for _ in range(3000):
        if await count_arrived(probe, url) >= n:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{n} requests never arrived at {url}")


async def echo(session: aiohttp.ClientSession, url: str, ident: str) -> tuple[int, bytes]:
    headers = {"Content-Type": "application/octet-stream", "Accept": "application/msgpack"}
    async with session.post(f"{url}/v1/infer", data=ident.encode(), headers=headers) as r:
        return r.status, await r.read()


async def late_requests(url: str) -> list[int | str]:
    """Fresh connections after the signal, until one is refused."""
    outcomes: list[int | str] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as s:
        for i in range(200):
            try:
                outcomes.append((await echo(s, url, f"late{i}"))[0])
            except aiohttp.ClientConnectorError:
                outcomes.append("refused")
                return outcomes
            except aiohttp.ClientConnectionError:
                outcomes.append("closed")  # accepted by the kernel, closed by the server
            await asyncio.sleep(0.01)
    return outcomes


@pytest.mark.asyncio
async def test_sigterm_drains_every_accepted_request_and_exits_0(tmp_path: Path) -> None:
    log = tmp_path / "kernel.log"
    config = tmp_path / "slow.toml"
    config.write_text(
        f'[slow]\nbackend = "tests.serve.serve_support:Slow"\ndelay = 0.15\nmax = 8\n'
        f"log = {str(log)!r}\n"
    )
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "torchweir.serve.cli", str(config), "--port", "0",
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        line = (await asyncio.wait_for(server.stdout.readline(), 30)).decode()
        assert line.startswith("torchweir serve: listening on http://127.0.0.1:"), line
        url = line.split(" on ")[1].strip()
        async with (
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session,
            aiohttp.ClientSession() as probe,
        ):
            burst = [asyncio.ensure_future(echo(session, url, f"b{i}")) for i in range(BURST)]
            await wait_for_arrivals(probe, url, BURST)  # all of them are in the runtime
            assert not all(task.done() for task in burst)  # the signal comes mid-way
            server.send_signal(signal.SIGTERM)
            late = await late_requests(url)
            replies = await asyncio.gather(*burst)
        _, err = await asyncio.wait_for(server.communicate(), 30)
    finally:
        if server.returncode is None:
            server.kill()
            await server.wait()

    assert server.returncode == 0, err.decode()
    assert err.decode().endswith("torchweir serve: stopped\n")
    assert [status for status, _ in replies] == [200] * BURST
    assert [msgspec.msgpack.decode(body) for _, body in replies] == [
        {"result": f"b{i}".encode()} for i in range(BURST)
    ]
    assert late[-1] == "refused"
    assert set(late[:-1]) <= {200, "closed"}
    ran = set(log.read_text().split())
    answered = {f"b{i}" for i in range(BURST)} | {
        f"late{i}" for i, outcome in enumerate(late) if outcome == 200
    }
    assert ran == answered  # whatever reached the kernel was answered, and nothing else ran
