"""Content negotiation and the outcome -> status table, as pure functions."""

from __future__ import annotations

import pytest

import torchweir as tw
from torchweir.serve.codec import CodecError
from torchweir.serve.media import body_kind, response_format
from torchweir.serve.status import PayloadTooLarge, UnsupportedMediaType, error_body, error_status


@pytest.mark.parametrize(
    ("content_type", "kind"),
    [
        ("application/octet-stream", "raw"),
        ("application/json", "json"),
        ("Application/JSON", "json"),
        ("application/msgpack", "msgpack"),
        ("application/x-msgpack", "msgpack"),
        ("text/plain", None),
        ("multipart/form-data", None),
    ],
)
def test_body_kinds(content_type: str, kind: str | None) -> None:
    assert body_kind(content_type) == kind


@pytest.mark.parametrize(
    ("accept", "kind", "fmt"),
    [
        (None, "json", "json"),
        (None, "raw", "json"),
        (None, "msgpack", "msgpack"),
        ("*/*", "msgpack", "msgpack"),
        ("application/msgpack", "json", "msgpack"),
        ("application/x-msgpack", "raw", "msgpack"),
        ("application/json", "msgpack", "json"),
        ("application/json;q=0.5, application/msgpack", "json", "msgpack"),
        ("application/msgpack;q=0.2, application/*;q=0.9", "json", "json"),
        ("application/*", "msgpack", "msgpack"),
        ("text/html", "msgpack", "msgpack"),  # unsatisfiable: ignored, not 406
        ("application/json;q=0", "raw", "json"),
        ("application/json;q=bad, application/msgpack;q=0.1", "raw", "msgpack"),
    ],
)
def test_response_format(accept: str | None, kind: str, fmt: str) -> None:
    assert response_format(accept, kind) == fmt  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (tw.InputError("corrupt", node="decode"), 400),
        (CodecError("malformed"), 400),
        (tw.UnknownNode("no node 'x'", "x"), 404),
        (tw.UnknownNode("the graph has 2 roots"), 400),
        (PayloadTooLarge(10, 5), 413),
        (UnsupportedMediaType("text/plain", ("application/json",)), 415),
        (tw.KernelError("boom", node="k"), 500),
        (tw.Overloaded("k", 1), 503),
        (tw.RuntimeClosed("closing"), 503),
        (tw.DeadlineExceeded(0.5), 504),
        (RuntimeError("bug"), 500),
    ],
)
def test_error_status(exc: Exception, status: int) -> None:
    assert error_status(exc) == status


def test_error_body_names_type_node_message_and_cause() -> None:
    try:
        try:
            raise ZeroDivisionError("division by zero")
        except ZeroDivisionError as cause:
            raise tw.KernelError("ZeroDivisionError: division by zero", node="div") from cause
    except tw.KernelError as exc:
        body = error_body(exc)
    assert body == {
        "error": {
            "type": "KernelError",
            "node": "div",
            "message": "node 'div': ZeroDivisionError: division by zero",
            "cause": "ZeroDivisionError",
        }
    }
    assert error_body(tw.RuntimeClosed("closed"))["error"] == {
        "type": "RuntimeClosed",
        "node": None,
        "message": "closed",
    }
