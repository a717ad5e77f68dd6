"""The aiohttp application: inference, health, graph and metrics routes over one Runtime.

Handlers do no work of their own beyond decoding and encoding: ``await runtime.submit``
is the whole of inference, so concurrent HTTP requests meet in the runtime's mailboxes
and share batches exactly as in-process callers do. There is no middleware, because
every layer costs each request a coroutine frame; the inference handler maps outcomes to
statuses itself (see :mod:`torchweir.serve.status`).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from torchweir.actors.metrics import Histogram
from torchweir.errors import KernelError
from torchweir.runtime.runtime import Runtime, RuntimeState
from torchweir.serve import media
from torchweir.serve.codec import CodecError, Format, decode, encode
from torchweir.serve.describe import graph_document
from torchweir.serve.metrics import CONTENT_TYPE, HttpStatistics, render
from torchweir.serve.status import (
    PayloadTooLarge,
    UnsupportedMediaType,
    error_body,
    error_status,
)

__all__ = ["DEFAULT_MAX_BODY", "make_app"]

DEFAULT_MAX_BODY = 8 * 1024 * 1024
_log = logging.getLogger("torchweir.serve")
_SUPPORTED = (media.OCTET_STREAM, media.JSON, media.MSGPACK, "application/x-msgpack")
_CONTENT_TYPES: dict[Format, str] = {"json": media.JSON, "msgpack": media.MSGPACK}


def make_app(
    runtime: Runtime,
    *,
    timeout: float | None = None,
    max_body: int = DEFAULT_MAX_BODY,
    retry_after_s: int = 1,
) -> web.Application:
    """An aiohttp application serving ``runtime``.

    Routes: ``POST /v1/infer`` and ``POST /v1/infer/{node}``, ``GET /healthz``,
    ``GET /readyz``, ``GET /v1/graph`` and ``GET /metrics`` (see the package docstring).

    If ``runtime`` is still unstarted when the application starts, the application
    starts it and closes it (draining) on cleanup; a runtime that is already running
    when the application starts stays its owner's to close.

    Args:
        runtime: the runtime to serve.
        timeout: seconds each request may take (``submit(timeout=...)``); 504 after.
        max_body: the largest request body in bytes; 413 above.
        retry_after_s: the ``Retry-After`` of a 503 (overloaded or closing).

    Raises:
        ValueError: ``timeout``, ``max_body`` or ``retry_after_s`` is out of range.
    """
    if timeout is not None and not timeout > 0:
        raise ValueError(f"timeout must be > 0 seconds or None, got {timeout!r}")
    if isinstance(max_body, bool) or not isinstance(max_body, int) or max_body < 1:
        raise ValueError(f"max_body must be an int >= 1 bytes, got {max_body!r}")
    if isinstance(retry_after_s, bool) or not isinstance(retry_after_s, int) or retry_after_s < 0:
        raise ValueError(f"retry_after_s must be an int >= 0 seconds, got {retry_after_s!r}")
    server = _Server(runtime, timeout, max_body, retry_after_s)
    app = web.Application(client_max_size=max_body)
    app.cleanup_ctx.append(server.lifespan)
    app.router.add_post("/v1/infer", server.infer)
    app.router.add_post("/v1/infer/{node}", server.infer)
    app.router.add_get("/healthz", server.healthz)
    app.router.add_get("/readyz", server.readyz)
    app.router.add_get("/v1/graph", server.graph)
    app.router.add_get("/metrics", server.metrics)
    return app


class _Server:
    """The handlers, and the inference endpoints' counters."""

    def __init__(
        self, runtime: Runtime, timeout: float | None, max_body: int, retry_after_s: int
    ) -> None:
        self.runtime = runtime
        self.timeout = timeout
        self.max_body = max_body
        self.retry_after = str(retry_after_s)
        self.responses: Counter[int] = Counter()
        self.in_flight = 0
        self.duration = Histogram()
        self._graph = graph_document(runtime.graph)

    async def lifespan(self, app: web.Application) -> AsyncIterator[None]:
        owned = self.runtime.state is RuntimeState.UNSTARTED
        if owned:
            await self.runtime.start()
        try:
            yield
        finally:
            if owned:
                await self.runtime.aclose()

    # -- inference ---------------------------------------------------------------------

    async def infer(self, request: web.Request) -> web.Response:
        self.in_flight += 1
        start = time.perf_counter()
        try:
            response = await self._infer(request)
        finally:
            self.in_flight -= 1
        self.responses[response.status] += 1
        self.duration.observe(time.perf_counter() - start)
        return response

    async def _infer(self, request: web.Request) -> web.Response:
        kind = media.body_kind(request.content_type)
        fmt = media.response_format(request.headers.get("Accept"), kind)
        try:
            if kind is None:
                raise UnsupportedMediaType(request.content_type, _SUPPORTED)
            body = await self._read(request)
            result = await self._run(kind, body, request.match_info.get("node"))
            return _reply(200, encode({"result": result}, fmt), fmt)
        except Exception as exc:  # every failure is this request's response, typed
            return self._error(exc, fmt)

    async def _read(self, request: web.Request) -> bytes:
        size = request.content_length
        if size is not None and size > self.max_body:
            raise PayloadTooLarge(size, self.max_body)
        try:
            return await request.read()
        except web.HTTPRequestEntityTooLarge:  # a chunked body that outgrew the limit
            raise PayloadTooLarge(None, self.max_body) from None

    async def _run(self, kind: media.BodyKind, body: bytes, node: str | None) -> Any:
        if kind == "raw":
            return await self.runtime.submit(body, timeout=self.timeout, node_name=node)
        request = _request_dict(decode(body, kind), node)
        done = await self.runtime.submit(request, timeout=self.timeout)
        return done.get("result")

    def _error(self, exc: Exception, fmt: Format) -> web.Response:
        status = error_status(exc)
        if status == 500 and not isinstance(exc, KernelError):
            _log.error("unexpected error serving a request", exc_info=exc)
        response = _reply(status, encode(error_body(exc), fmt), fmt)
        if status == 503:
            response.headers["Retry-After"] = self.retry_after
        return response

    # -- the rest ----------------------------------------------------------------------

    async def healthz(self, request: web.Request) -> web.Response:
        return _reply(200, b'{"status":"ok"}', "json")

    async def readyz(self, request: web.Request) -> web.Response:
        state = self.runtime.state
        ready = state is RuntimeState.RUNNING
        return _reply(200 if ready else 503, encode({"status": state.value}, "json"), "json")

    async def graph(self, request: web.Request) -> web.Response:
        return _reply(200, self._graph, "json")

    async def metrics(self, request: web.Request) -> web.Response:
        http = HttpStatistics(dict(self.responses), self.in_flight, self.duration.snapshot())
        text = render(self.runtime.statistics(), http)
        return web.Response(body=text.encode(), headers={"Content-Type": CONTENT_TYPE})


def _reply(status: int, body: bytes, fmt: Format) -> web.Response:
    return web.Response(status=status, body=body, headers={"Content-Type": _CONTENT_TYPES[fmt]})


def _request_dict(value: Any, node: str | None) -> dict[str, Any]:
    """Check a decoded JSON/msgpack request; the URL's node overrides none in the body."""
    if not isinstance(value, dict):
        raise CodecError(f"a request must be a map with 'data', got {type(value).__name__}")
    if "data" not in value:
        raise CodecError(f"a request needs a 'data' key, got keys {sorted(map(str, value))}")
    named = value.get("node_name")
    if named is not None and not isinstance(named, str):
        raise CodecError(f"'node_name' must be a string, got {named!r}")
    if node is not None:
        if named is not None and named != node:
            raise CodecError(f"the URL names node {node!r} but the body names {named!r}")
        value["node_name"] = node
    return value
