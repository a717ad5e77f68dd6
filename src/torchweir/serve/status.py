"""How an outcome becomes an HTTP status and an error body.

One table, so the server and its documentation agree, and clients (``HttpTarget``) can
map the statuses back to torchweir's exception types.

======  ==================================================================================
status  outcome
======  ==================================================================================
200     a result
400     ``InputError`` (bad input; names the node); ``CodecError`` (malformed JSON or msgpack,
        a body without ``data``); ``UnknownNode`` when the graph has several roots and the
        request named none
404     ``UnknownNode``: no such node
413     ``PayloadTooLarge``: the body is over ``max_body``
415     ``UnsupportedMediaType``
500     another ``KernelError`` (the kernel failed): its type and node, never a traceback;
        anything else, which is a bug and is logged
503     ``Overloaded`` or ``RuntimeClosed``, with ``Retry-After``
504     ``DeadlineExceeded``
======  ==================================================================================

The body is ``{"error": {"type": ..., "node": ..., "message": ...}}``, plus ``"cause"``
(the original exception's type) when torchweir wrapped one, in the negotiated format.
"""

from __future__ import annotations

from typing import Any

from torchweir.errors import (
    DeadlineExceeded,
    InputError,
    KernelError,
    Overloaded,
    RuntimeClosed,
    UnknownNode,
)
from torchweir.serve.codec import CodecError

__all__ = ["PayloadTooLarge", "UnsupportedMediaType", "error_body", "error_status"]


class PayloadTooLarge(ValueError):
    """The request body is larger than the server accepts."""

    def __init__(self, size: int | None, limit: int) -> None:
        got = f"{size} bytes" if size is not None else "more"
        super().__init__(f"request body too large: {got}, the limit is {limit} bytes")


class UnsupportedMediaType(ValueError):
    """The request's Content-Type is none of octet-stream, JSON and msgpack."""

    def __init__(self, content_type: str, supported: tuple[str, ...]) -> None:
        super().__init__(
            f"unsupported Content-Type {content_type!r}; send one of {', '.join(supported)}"
        )


_STATUSES: tuple[tuple[type[BaseException], int], ...] = (
    (InputError, 400),  # before KernelError, its base
    (CodecError, 400),
    (PayloadTooLarge, 413),
    (UnsupportedMediaType, 415),
    (KernelError, 500),
    (Overloaded, 503),
    (RuntimeClosed, 503),
    (DeadlineExceeded, 504),
)


def error_status(exc: BaseException) -> int:
    """The HTTP status for a request that failed with ``exc``."""
    if isinstance(exc, UnknownNode):
        return 404 if exc.node is not None else 400
    for kind, status in _STATUSES:
        if isinstance(exc, kind):
            return status
    return 500


def error_body(exc: BaseException) -> dict[str, Any]:
    """The error document: the type, the node (or ``None``) and the message."""
    error: dict[str, Any] = {
        "type": type(exc).__name__,
        "node": getattr(exc, "node", None),
        "message": str(exc),
    }
    cause = exc.__cause__
    if cause is not None and cause is not exc:
        error["cause"] = type(cause).__name__
    return {"error": error}
