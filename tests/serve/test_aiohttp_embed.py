"""``examples/aiohttp_embed.py`` serves, in this process, what its docstring promises."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import aiohttp
import pytest
from tests.serve.serve_support import serving

import torchweir as tw

EXAMPLE = Path(__file__).parents[2] / "examples" / "aiohttp_embed.py"


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("aiohttp_embed", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["aiohttp_embed"] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.asyncio
async def test_the_app_owns_its_runtime_and_serves_its_own_route() -> None:
    example = load()
    app = example.create_app()
    runtime = app[example.RUNTIME]
    assert runtime.state is tw.RuntimeState.UNSTARTED
    async with serving(app) as url, aiohttp.ClientSession() as session:
        assert runtime.state is tw.RuntimeState.RUNNING
        text = "the weir holds the water back"
        async with session.post(f"{url}/words", json={"text": text}) as r:
            assert r.status == 200
            assert await r.json() == {
                "counts": {"the": 2, "back": 1, "holds": 1, "water": 1, "weir": 1}
            }
        async with session.post(f"{url}/words", json={"text": 5}) as r:
            assert r.status == 400
            assert "tokenize" in (await r.json())["error"]
        async with session.post(f"{url}/words", data=b"not json") as r:
            assert r.status == 400
        async with session.get(f"{url}/torchweir/metrics") as r:
            metrics = await r.text()
        assert 'torchweir_node_requests_total{node="tokenize"} 2' in metrics
        assert 'torchweir_node_requests_total{node="count"} 1' in metrics
    assert runtime.state is tw.RuntimeState.CLOSED  # the cleanup context closed it
