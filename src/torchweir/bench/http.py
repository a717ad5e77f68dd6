"""``HttpTarget``: benchmark a ``torchweir serve`` server over HTTP with the same reports.

Failures come back as exceptions of torchweir's own types, rebuilt from the server's
error document (or, lacking one, from the status: 400, 413, 415 -> ``InputError``,
404 -> ``UnknownNode``, 500 -> ``KernelError``, 503 -> ``Overloaded``, 504 ->
``DeadlineExceeded``). So a report counts ``InputError(InputError)`` for a corrupt JPEG
whether it was measured in-process or over the network. Connection failures stay
aiohttp's own exceptions, counted by their type.
"""

from __future__ import annotations

import asyncio
import builtins
import functools
import urllib.parse
from typing import TYPE_CHECKING, Any, TypeVar

from torchweir import errors
from torchweir.errors import ConfigError, DeadlineExceeded, TorchweirError
from torchweir.serve import codec
from torchweir.serve.media import JSON, MSGPACK, OCTET_STREAM

if TYPE_CHECKING:
    import aiohttp

__all__ = ["HttpError", "HttpTarget", "remote_error"]

E = TypeVar("E", bound=BaseException)

_BY_STATUS: dict[int, type[TorchweirError]] = {
    400: errors.InputError,
    404: errors.UnknownNode,
    413: errors.InputError,
    415: errors.InputError,
    500: errors.KernelError,
    503: errors.Overloaded,
    504: errors.DeadlineExceeded,
}
_FORMATS: dict[str, codec.Format] = {JSON: "json", MSGPACK: "msgpack"}
_HEADERS = {
    "bytes": {"Content-Type": OCTET_STREAM, "Accept": MSGPACK},
    "msgpack": {"Content-Type": MSGPACK, "Accept": MSGPACK},
}


class HttpError(Exception):
    """An HTTP failure that maps to no torchweir error (a 405, a proxy's 502...)."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        super().__init__(f"HTTP {status}: {message}")


class HttpTarget:
    """A server at ``url`` (``torchweir serve``), driven through ``POST /v1/infer``.

    Bytes items go as ``application/octet-stream`` bodies; any other item as msgpack
    ``{"data": item}`` (a dict with ``data`` goes as it is). Replies are asked for in
    msgpack. A call of K items sends K requests at once.

    Args:
        url: the server's base URL, such as ``http://127.0.0.1:8095``.
        name: the label in reports.
        node_name: enter the graph at this node (``/v1/infer/{node}``).
        connections: the most connections to keep open; ``None`` for as many as there
            are requests in flight, so a closed loop of N clients uses N connections.
        timeout: seconds a request may take on the client's side, after which it counts
            as ``DeadlineExceeded`` (the server's own limit is ``torchweir serve --timeout``).

    Raises:
        ValueError: ``url`` is not an http(s) URL, or a number is out of range.
    """

    def __init__(
        self,
        url: str,
        name: str = "http",
        *,
        node_name: str | None = None,
        connections: int | None = None,
        timeout: float | None = None,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"url must start with http:// or https://, got {url!r}")
        if connections is not None and connections < 1:
            raise ValueError(f"connections must be >= 1 or None, got {connections!r}")
        if timeout is not None and not timeout > 0:
            raise ValueError(f"timeout must be > 0 seconds or None, got {timeout!r}")
        self.name = name
        self.url = url.rstrip("/")
        self.timeout = timeout
        node = f"/{urllib.parse.quote(node_name, safe='')}" if node_name else ""
        self._endpoint = f"{self.url}/v1/infer{node}"
        self._connections = connections
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"HttpTarget({self.url!r}, name={self.name!r})"

    async def open(self) -> None:
        """Open the connection pool and check that the server is ready.

        Raises:
            ConfigError: the server cannot be reached, or is not ready.
        """
        import aiohttp

        connector = aiohttp.TCPConnector(limit=self._connections or 0, limit_per_host=0)
        session = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=self.timeout)
        )
        try:
            async with session.get(f"{self.url}/readyz") as response:
                status, body = response.status, await response.text()
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
            await session.close()
            raise ConfigError(f"cannot reach a server at {self.url}: {exc!r}") from None
        if status != 200:
            await session.close()
            raise ConfigError(f"the server at {self.url} is not ready: {status} {body}")
        self._session = session

    async def call(self, items: list[Any]) -> list[Any]:
        session = self._session
        if session is None:
            raise RuntimeError(f"{self!r} is not open")
        if len(items) == 1:
            return [await self._outcome(session, items[0])]
        return list(await asyncio.gather(*(self._outcome(session, item) for item in items)))

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def _outcome(self, session: aiohttp.ClientSession, item: Any) -> Any:
        try:
            return await self._post(session, item)
        except asyncio.TimeoutError:
            return DeadlineExceeded(self.timeout or 0.0)
        except Exception as exc:  # one item's failure is that item's outcome
            return exc

    async def _post(self, session: aiohttp.ClientSession, item: Any) -> Any:
        if isinstance(item, (bytes, bytearray, memoryview)):
            body, headers = bytes(item), _HEADERS["bytes"]
        else:
            wrapped = item if isinstance(item, dict) and "data" in item else {"data": item}
            body, headers = codec.encode(wrapped, "msgpack"), _HEADERS["msgpack"]
        async with session.post(self._endpoint, data=body, headers=headers) as response:
            status, content_type = response.status, response.content_type
            payload = await response.read()
        fmt = _FORMATS.get(content_type.lower(), "json")
        if status == 200:
            return codec.decode(payload, fmt)["result"]
        raise remote_error(status, _error_document(payload, fmt))


def _error_document(payload: bytes, fmt: codec.Format) -> dict[str, Any]:
    try:
        document = codec.decode(payload, fmt)
    except codec.CodecError:
        document = None
    error = document.get("error") if isinstance(document, dict) else None
    if isinstance(error, dict):
        return error
    return {"message": payload[:200].decode("utf-8", "replace")}


def remote_error(status: int, error: dict[str, Any]) -> Exception:
    """The exception a server's error reply stands for, rebuilt from its document.

    Only the message and the node cross the wire; the original exception's type, when
    the server reported one as ``cause``, becomes the ``__cause__``'s type.
    """
    message = str(error.get("message", ""))
    named = getattr(errors, str(error.get("type")), None)
    if isinstance(named, type) and issubclass(named, TorchweirError):
        kind: type[TorchweirError] | None = named
    else:
        kind = _BY_STATUS.get(status)
    if kind is None:
        return HttpError(status, message)
    exc = _bare(kind, message)
    exc.node = error.get("node")  # type: ignore[attr-defined]
    exc.detail = message  # type: ignore[attr-defined]
    cause = error.get("cause")
    if isinstance(cause, str) and cause.isidentifier():
        exc.__cause__ = _bare(_exception_type(cause), message)
    return exc


def _bare(kind: type[E], message: str) -> E:
    """An instance of ``kind`` whose message is ``message``, whatever its constructor
    takes (``Overloaded(node, capacity)``, ``DeadlineExceeded(timeout)``...)."""
    exc = kind.__new__(kind)
    Exception.__init__(exc, message)
    return exc


@functools.lru_cache(maxsize=256)
def _exception_type(name: str) -> type[Exception]:
    """A torchweir or builtin exception class of that name, else a stand-in named so."""
    for namespace in (errors, builtins):
        found = getattr(namespace, name, None)
        if isinstance(found, type) and issubclass(found, Exception):
            return found
    return type(name, (Exception,), {"__module__": "torchweir.bench.http.remote"})
