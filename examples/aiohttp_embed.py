"""Embed a torchweir Runtime in an aiohttp application of your own.

The application owns the runtime: a ``cleanup_ctx`` starts it before the server takes
requests and closes it (draining what is in flight) after the server stops. Its own
handler awaits ``rt.submit()``, so concurrent HTTP requests share batches. The ready-made
routes of ``torchweir.serve`` (metrics, health, graph, inference) are mounted beside it
under ``/torchweir/``.

Run it, then ask it::

    python examples/aiohttp_embed.py            # serves on http://127.0.0.1:8080
    curl -s localhost:8080/words -d '{"text": "the weir holds the water back"}'
    curl -s localhost:8080/torchweir/metrics | grep requests_total
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

import torchweir as tw
from torchweir.serve import make_app

RUNTIME = web.AppKey("runtime", tw.Runtime)


@tw.kernel(max=32)
def tokenize(batch: list[str]) -> list[Any]:
    """One batch of texts -> their lowercase words (a non-text fails only its request)."""
    return [
        text.lower().split() if isinstance(text, str) else tw.InputError("text must be a string")
        for text in batch
    ]


@tw.kernel(max=32)
def count(batch: list[list[str]]) -> list[dict[str, int]]:
    """Word counts, most frequent first."""
    out = []
    for words in batch:
        counts: dict[str, int] = {}
        for word in words:
            counts[word] = counts.get(word, 0) + 1
        out.append(dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))))
    return out


def graph() -> tw.Graph:
    g = tw.Graph()
    g.node("tokenize", tokenize, instance_num=2) >> g.node("count", count, batching_timeout=1)
    return g


async def runtime_context(app: web.Application) -> AsyncIterator[None]:
    """Start the runtime with the application, and close it when the application stops."""
    async with app[RUNTIME]:
        yield


async def words(request: web.Request) -> web.Response:
    """``POST /words {"text": ...}`` -> ``{"counts": {word: n, ...}}``."""
    try:
        body = await request.json()
        text = body["text"]
    except (ValueError, TypeError, KeyError):
        return web.json_response({"error": 'send JSON like {"text": "..."}'}, status=400)
    try:
        counts = await request.app[RUNTIME].submit(text, timeout=5.0)
    except tw.InputError as exc:
        return web.json_response({"error": str(exc)}, status=400)
    return web.json_response({"counts": counts})


def create_app() -> web.Application:
    app = web.Application()
    app[RUNTIME] = tw.Runtime(graph())
    app.cleanup_ctx.append(runtime_context)  # before the sub-app: the runtime is ours
    app.router.add_post("/words", words)
    app.add_subapp("/torchweir/", make_app(app[RUNTIME]))
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args()
    web.run_app(create_app(), host=args.host, port=args.port)


if __name__ == "__main__":
    main()
