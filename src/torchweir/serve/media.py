"""Content negotiation: which decoder reads a request body, which encoder writes the reply.

Kept apart from the handlers so that the rules are pure functions of two header values.
"""

from __future__ import annotations

from typing import Literal

from torchweir.serve.codec import Format

__all__ = ["JSON", "MSGPACK", "OCTET_STREAM", "BodyKind", "body_kind", "response_format"]

JSON = "application/json"
MSGPACK = "application/msgpack"
OCTET_STREAM = "application/octet-stream"

#: ``raw``: the body itself is the root node's ``data``; the others decode to a dict.
BodyKind = Literal["raw", "json", "msgpack"]

_MSGPACK_TYPES = frozenset({MSGPACK, "application/x-msgpack", "application/vnd.msgpack"})
_KINDS: dict[str, BodyKind] = {
    OCTET_STREAM: "raw",
    JSON: "json",
    **{name: "msgpack" for name in _MSGPACK_TYPES},
}
_NAMES: dict[Format, frozenset[str]] = {"json": frozenset({JSON}), "msgpack": _MSGPACK_TYPES}


def body_kind(content_type: str) -> BodyKind | None:
    """How to read a body of ``content_type`` (parameters stripped), or ``None`` if
    unsupported. aiohttp reports a missing Content-Type as ``application/octet-stream``."""
    return _KINDS.get(content_type.lower())


def response_format(accept: str | None, kind: BodyKind | None) -> Format:
    """The reply's format: the best of JSON and msgpack by ``Accept`` (with ``q``
    weights); without a preference, msgpack for a msgpack request, else JSON.

    An ``Accept`` that allows neither is ignored rather than answered with 406: a client
    that cannot read the reply still learns its status.
    """
    default: Format = "msgpack" if kind == "msgpack" else "json"
    if not accept or accept == "*/*":
        return default
    if accept in _MSGPACK_TYPES:  # the common single types, without parsing
        return "msgpack"
    if accept == JSON:
        return "json"
    weights = {fmt: _weight(accept, names) for fmt, names in _NAMES.items()}
    best = max(weights.values())
    if best <= 0 or weights[default] == best:
        return default
    return "json" if weights["json"] == best else "msgpack"


def _weight(accept: str, names: frozenset[str]) -> float:
    """The ``q`` of the most specific media range in ``accept`` that covers ``names``."""
    found: tuple[int, float] = (-1, 0.0)  # (specificity, q)
    for part in accept.split(","):
        media, *params = (piece.strip() for piece in part.split(";"))
        media = media.lower()
        if media in names:
            specificity = 2
        elif media == "application/*":
            specificity = 1
        elif media == "*/*":
            specificity = 0
        else:
            continue
        if specificity > found[0]:
            found = (specificity, _q(params))
    return found[1]


def _q(params: list[str]) -> float:
    for param in params:
        key, _, value = param.partition("=")
        if key.strip().lower() == "q":
            try:
                return min(max(float(value), 0.0), 1.0)
            except ValueError:
                return 0.0
    return 1.0
