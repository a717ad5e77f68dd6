"""``make_app`` behind a real aiohttp server on loopback: routes, formats and every status."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import msgspec
import numpy as np
import pytest
import pytest_asyncio
import torch
from tests.serve.serve_support import DECODE_BACKEND, Gate, divide, serving, wait_until

import torchweir as tw
from torchweir.serve import make_app
from torchweir.serve.codec import decode

JSON = "application/json"
MSGPACK = "application/msgpack"
OCTET = "application/octet-stream"


@tw.kernel(max=8)
def tag(batch: list[Any]) -> list[Any]:
    return [["tag", x] for x in batch]


@tw.kernel(max=8)
def arrays(batch: list[Any]) -> list[Any]:
    return [
        {
            "np": np.arange(n, dtype=np.float32).reshape(1, n),
            "torch": torch.ones(2, n, dtype=torch.uint8),
        }
        for n in batch
    ]


def tag_graph() -> tw.Graph:
    g = tw.Graph(entry="tag")
    g.node("tag", tag)
    g.node("arrays", arrays)
    return g


class Reply(msgspec.Struct):
    status: int
    headers: Any
    body: Any


async def post(
    session: aiohttp.ClientSession,
    url: str,
    body: Any,
    content_type: str | None,
    accept: str | None = None,
) -> Reply:
    headers = {"Content-Type": content_type} if content_type else {}
    if accept is not None:
        headers["Accept"] = accept
    async with session.post(url, data=body, headers=headers) as response:
        raw = await response.read()
        fmt = "msgpack" if response.content_type == MSGPACK else "json"
        return Reply(response.status, response.headers, decode(raw, fmt))


@pytest_asyncio.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.mark.asyncio
async def test_octet_stream_json_and_msgpack_bodies(session: aiohttp.ClientSession) -> None:
    async with serving(make_app(tw.Runtime(tag_graph()))) as url:
        raw = await post(session, f"{url}/v1/infer", b"\x00jpeg", OCTET)
        assert (raw.status, raw.headers["Content-Type"]) == (200, JSON)
        assert raw.body == {"result": ["tag", b"\x00jpeg"]}

        as_json = json.dumps({"data": {"base64": base64.b64encode(b"hi").decode()}})
        got = await post(session, f"{url}/v1/infer", as_json, JSON)
        assert got.body == {"result": ["tag", b"hi"]}

        packed = msgspec.msgpack.encode({"data": [1, 2], "node_name": "tag"})
        got = await post(session, f"{url}/v1/infer", packed, "application/x-msgpack")
        assert (got.status, got.headers["Content-Type"]) == (200, MSGPACK)
        assert got.body == {"result": ["tag", [1, 2]]}


@pytest.mark.asyncio
async def test_node_in_the_path_and_arrays_in_both_formats(
    session: aiohttp.ClientSession,
) -> None:
    async with serving(make_app(tw.Runtime(tag_graph()))) as url:
        for accept in (None, MSGPACK):
            got = await post(session, f"{url}/v1/infer/arrays", b'{"data": 3}', JSON, accept)
            assert got.status == 200
            assert got.headers["Content-Type"] == (accept or JSON)
            result = got.body["result"]
            np.testing.assert_array_equal(result["np"], np.arange(3, dtype=np.float32)[None])
            assert result["np"].dtype == np.float32
            assert result["torch"].dtype == np.uint8
            assert result["torch"].shape == (2, 3)
        named = await post(session, f"{url}/v1/infer", b'{"data": 1, "node_name": "arrays"}', JSON)
        assert named.body["result"]["np"].shape == (1, 1)


@pytest.mark.asyncio
async def test_bad_requests_are_400_with_the_reason(session: aiohttp.ClientSession) -> None:
    async with serving(make_app(tw.Runtime(tag_graph()))) as url:
        cases = [
            (b"{not json", JSON, "malformed json body"),
            (b"\xc1", MSGPACK, "malformed msgpack body"),
            (b'{"text": 1}', JSON, "needs a 'data' key, got keys ['text']"),
            (b"[1, 2]", JSON, "must be a map with 'data', got list"),
            (b'{"data": 1, "node_name": 5}', JSON, "'node_name' must be a string, got 5"),
        ]
        for body, content_type, message in cases:
            got = await post(session, f"{url}/v1/infer", body, content_type)
            assert got.status == 400, body
            assert got.body["error"]["type"] == "CodecError"
            assert message in got.body["error"]["message"]
        conflict = await post(
            session, f"{url}/v1/infer/tag", b'{"data":1,"node_name":"arrays"}', JSON
        )
        assert conflict.status == 400
        assert (
            "URL names node 'tag' but the body names 'arrays'" in conflict.body["error"]["message"]
        )


@pytest.mark.asyncio
async def test_corrupt_image_is_400_naming_the_node(session: aiohttp.ClientSession) -> None:
    g = tw.Graph()
    g.node("decode", DECODE_BACKEND, resize_h=32, resize_w=32, color="rgb")
    async with serving(make_app(tw.Runtime(g))) as url:
        got = await post(session, f"{url}/v1/infer", b"\xff\xd8\xff\xe0 not a jpeg", OCTET)
    assert got.status == 400
    error = got.body["error"]
    assert (error["type"], error["node"]) == ("InputError", "decode")
    assert error["message"].startswith("node 'decode': ")


@pytest.mark.asyncio
async def test_unknown_node_is_404(session: aiohttp.ClientSession) -> None:
    async with serving(make_app(tw.Runtime(tag_graph()))) as url:
        got = await post(session, f"{url}/v1/infer/tga", b"x", OCTET)
    assert got.status == 404
    assert got.body["error"]["type"] == "UnknownNode"
    assert got.body["error"]["node"] == "tga"
    assert "'tag'" in got.body["error"]["message"]  # the close match


@pytest.mark.asyncio
async def test_body_over_max_body_is_413(session: aiohttp.ClientSession) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(4):
            yield b"x" * 400  # no Content-Length: the limit is met while reading

    async with serving(make_app(tw.Runtime(tag_graph()), max_body=1000)) as url:
        assert (await post(session, f"{url}/v1/infer", b"x" * 1000, OCTET)).status == 200
        sized = await post(session, f"{url}/v1/infer", b"x" * 1001, OCTET)
        chunked = await post(session, f"{url}/v1/infer", chunks(), OCTET)
    assert sized.status == 413
    assert "1001 bytes, the limit is 1000 bytes" in sized.body["error"]["message"]
    assert chunked.status == 413
    assert chunked.body["error"]["type"] == "PayloadTooLarge"


@pytest.mark.asyncio
async def test_unsupported_content_type_is_415(session: aiohttp.ClientSession) -> None:
    async with serving(make_app(tw.Runtime(tag_graph()))) as url:
        got = await post(session, f"{url}/v1/infer", b"x", "text/plain")
    assert got.status == 415
    assert "'text/plain'" in got.body["error"]["message"]


@pytest.mark.asyncio
async def test_kernel_failure_is_500_with_type_and_node_but_no_traceback(
    session: aiohttp.ClientSession,
) -> None:
    g = tw.Graph()
    g.node("divide", divide)
    async with serving(make_app(tw.Runtime(g))) as url:
        ok = await post(session, f"{url}/v1/infer", b'{"data": 4}', JSON)
        failed = await post(session, f"{url}/v1/infer", b'{"data": 0}', JSON)
    assert ok.body == {"result": 0.25}
    assert failed.status == 500
    error = failed.body["error"]
    assert (error["type"], error["node"], error["cause"]) == (
        "KernelError",
        "divide",
        "ZeroDivisionError",
    )
    assert "Traceback" not in json.dumps(failed.body)


@pytest.mark.asyncio
async def test_full_mailbox_is_503_with_retry_after(session: aiohttp.ClientSession) -> None:
    gate = Gate()
    g = tw.Graph()
    g.node("gated", gate.kernel(), max_queue=1)
    runtime = tw.Runtime(g, overflow="reject")
    async with serving(make_app(runtime, retry_after_s=2)) as url:
        running = session.post(f"{url}/v1/infer", data=b"1", headers={"Content-Type": OCTET})
        first = await _start(running)
        await wait_until(lambda: gate.entered == 1)
        queued = await _start(
            session.post(f"{url}/v1/infer", data=b"2", headers={"Content-Type": OCTET})
        )
        await wait_until(lambda: runtime.statistics().nodes[0].queued == 1)
        rejected = await post(session, f"{url}/v1/infer", b"3", OCTET)
        gate.release()
        assert [(await r).status for r in (first, queued)] == [200, 200]
    assert rejected.status == 503
    assert rejected.headers["Retry-After"] == "2"
    assert rejected.body["error"]["type"] == "Overloaded"
    assert rejected.body["error"]["node"] == "gated"


@pytest.mark.asyncio
async def test_request_past_its_timeout_is_504(session: aiohttp.ClientSession) -> None:
    gate = Gate()
    g = tw.Graph()
    g.node("gated", gate.kernel())
    async with serving(make_app(tw.Runtime(g), timeout=0.05)) as url:
        got = await post(session, f"{url}/v1/infer", b"x", OCTET)
        gate.release()
    assert got.status == 504
    assert got.body["error"]["type"] == "DeadlineExceeded"


@pytest.mark.asyncio
async def test_health_readiness_and_a_runtime_owned_by_the_caller(
    session: aiohttp.ClientSession,
) -> None:
    runtime = tw.Runtime(tag_graph())
    async with serving(make_app(runtime)) as url:
        async with session.get(f"{url}/readyz") as r:
            assert (r.status, await r.json()) == (200, {"status": "running"})
        await runtime.aclose()  # the app started it, but anyone may close it
        async with session.get(f"{url}/readyz") as r:
            assert (r.status, await r.json()) == (503, {"status": "closed"})
        async with session.get(f"{url}/healthz") as r:
            assert (r.status, await r.json()) == (200, {"status": "ok"})
        closed = await post(session, f"{url}/v1/infer", b"x", OCTET)
        assert closed.status == 503
        assert closed.body["error"]["type"] == "RuntimeClosed"
        assert closed.headers["Retry-After"] == "1"

    async with tw.Runtime(tag_graph()) as mine:
        async with serving(make_app(mine)) as url:
            assert (await post(session, f"{url}/v1/infer", b"x", OCTET)).status == 200
        assert mine.state is tw.RuntimeState.RUNNING  # the app did not close what it found running


@pytest.mark.asyncio
async def test_graph_document(session: aiohttp.ClientSession) -> None:
    g = tw.Graph()
    dec = g.node("decode", DECODE_BACKEND, resize_h=32, resize_w=32, color="rgb", instance_num=2)
    dec >> g.node("tag", tag, batching_timeout=2)
    async with serving(make_app(tw.Runtime(g))) as url, session.get(f"{url}/v1/graph") as r:
        assert r.content_type == JSON
        doc = await r.json()
    assert doc["edges"] == [["decode", "tag"]]
    assert (doc["roots"], doc["entry"]) == (["decode"], "decode")
    decode_node, tag_node = doc["nodes"]
    assert decode_node["backend"] == DECODE_BACKEND
    assert decode_node["instance_num"] == 2
    assert decode_node["params"] == {"resize_h": 32, "resize_w": 32, "color": "rgb"}
    assert (tag_node["kernel"], tag_node["kernel_name"]) == ("FunctionKernel", "tag")
    assert tag_node["batching_timeout_ms"] == 2


def test_make_app_rejects_bad_settings() -> None:
    runtime = tw.Runtime(tag_graph())
    with pytest.raises(ValueError, match="timeout must be > 0 seconds or None, got 0"):
        make_app(runtime, timeout=0)
    with pytest.raises(ValueError, match="max_body must be an int >= 1 bytes, got 0"):
        make_app(runtime, max_body=0)
    with pytest.raises(ValueError, match="retry_after_s must be an int >= 0 seconds, got -1"):
        make_app(runtime, retry_after_s=-1)


async def _start(request: Any) -> Any:
    """Send a request now and return a task for its response (read in full)."""

    async def run() -> Reply:
        async with request as response:
            return Reply(response.status, response.headers, await response.read())

    task = asyncio.ensure_future(run())
    await asyncio.sleep(0)
    return task


@pytest.mark.asyncio
async def test_an_unencodable_result_is_a_logged_500(
    session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    @tw.kernel
    def opaque(batch: list[Any]) -> list[Any]:
        return [object() for _ in batch]

    g = tw.Graph()
    g.node("opaque", opaque)
    async with serving(make_app(tw.Runtime(g))) as url:
        got = await post(session, f"{url}/v1/infer", b"x", OCTET)
    assert got.status == 500
    assert got.body["error"]["type"] == "TypeError"
    assert "cannot encode a builtins.object" in got.body["error"]["message"]
    assert [r.name for r in caplog.records] == ["torchweir.serve"]


def test_importing_torchweir_and_the_codec_does_not_need_aiohttp() -> None:
    code = (
        "import sys, torchweir, torchweir.serve, torchweir.serve.codec, torchweir.serve.cli; "
        "assert 'aiohttp' not in sys.modules, 'aiohttp imported'; "
        "assert torchweir.serve.__all__ == ['make_app']; "
        "torchweir.serve.make_app; assert 'aiohttp' in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
