"""A thousand concurrent HTTP requests, a few corrupt: each gets exactly its own answer,
and ``/metrics`` accounts for every one of them."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import aiohttp
import msgspec
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families
from tests.serve.serve_support import DECODE_BACKEND, serving

import torchweir as tw
from torchweir.data import sample_image_bytes
from torchweir.kernels.cpu.reference import preprocess_reference
from torchweir.serve import make_app
from torchweir.serve.codec import decode

REQUESTS = 1000
SIDE = 32
PHOTOS = sample_image_bytes()
EXPECTED = [preprocess_reference(jpeg, SIDE, SIDE).numpy() for jpeg in PHOTOS]


def is_corrupt(i: int) -> bool:
    return i % 97 == 13


def body_for(i: int) -> tuple[bytes, str]:
    """Request ``i``'s body: its photo (or a truncated one), in one of the three encodings."""
    jpeg = PHOTOS[i % len(PHOTOS)]
    if is_corrupt(i):
        jpeg = jpeg[: len(jpeg) // 3]
    if i % 3 == 0:
        return jpeg, "application/octet-stream"
    if i % 3 == 1:
        return msgspec.msgpack.encode({"data": jpeg}), "application/msgpack"
    text = base64.b64encode(jpeg).decode()
    return json.dumps({"data": {"base64": text}}).encode(), "application/json"


async def send(session: aiohttp.ClientSession, url: str, i: int) -> tuple[int, Any]:
    body, content_type = body_for(i)
    async with session.post(url, data=body, headers={"Content-Type": content_type}) as r:
        fmt = "msgpack" if r.content_type == "application/msgpack" else "json"
        return r.status, decode(await r.read(), fmt)


@pytest.mark.asyncio
async def test_a_thousand_concurrent_requests_each_get_their_own_answer() -> None:
    g = tw.Graph()
    g.node(
        "decode", DECODE_BACKEND, resize_h=SIDE, resize_w=SIDE, color="rgb", instance_num=2, max=16
    )
    connector = aiohttp.TCPConnector(limit=0)  # every request on its own connection at once
    async with (
        serving(make_app(tw.Runtime(g)), backlog=REQUESTS) as url,
        aiohttp.ClientSession(connector=connector) as session,
    ):
        replies = await asyncio.gather(
            *(send(session, f"{url}/v1/infer", i) for i in range(REQUESTS))
        )
        async with session.get(f"{url}/metrics") as r:
            metrics = await r.text()

    corrupt = [i for i in range(REQUESTS) if is_corrupt(i)]
    assert 5 <= len(corrupt) <= 20
    for i, (status, body) in enumerate(replies):
        if is_corrupt(i):
            assert status == 400, i
            assert (body["error"]["type"], body["error"]["node"]) == ("InputError", "decode")
        else:
            assert status == 200, (i, body)
            result = body["result"]
            assert (result.dtype, result.shape) == (np.uint8, (1, 3, SIDE, SIDE))
            np.testing.assert_array_equal(result, EXPECTED[i % len(PHOTOS)])

    got = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(metrics)
        for s in family.samples
    }
    node = (("node", "decode"),)
    ok, bad = REQUESTS - len(corrupt), len(corrupt)
    assert got[("torchweir_http_requests_total", (("code", "200"),))] == ok
    assert got[("torchweir_http_requests_total", (("code", "400"),))] == bad
    assert got[("torchweir_http_request_duration_seconds_count", ())] == REQUESTS
    assert got[("torchweir_node_requests_total", node)] == REQUESTS
    assert got[("torchweir_node_dispatched_total", node)] == REQUESTS
    assert got[("torchweir_node_errors_total", (*node, ("type", "InputError")))] == bad
    assert got[("torchweir_node_batch_size_sum", node)] == REQUESTS
    assert got[("torchweir_node_queue_wait_seconds_count", node)] == REQUESTS
    batches = got[("torchweir_node_batch_size_count", node)]
    assert got[("torchweir_node_run_time_seconds_count", node)] == batches
    assert batches < REQUESTS  # concurrent requests shared batches
    assert got[("torchweir_node_queue_depth", node)] == 0
    assert got[("torchweir_http_requests_in_flight", ())] == 0
