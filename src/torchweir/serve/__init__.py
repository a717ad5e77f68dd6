"""Serve a Runtime over HTTP with aiohttp: ``make_app(runtime)``, and ``torchweir serve``.

Routes:

* ``POST /v1/infer``: run one request from the graph's entry. The body is either the
  raw ``data`` (``Content-Type: application/octet-stream``, e.g. a JPEG), or a JSON or
  msgpack map ``{"data": ..., "node_name": ...}`` (``application/json``,
  ``application/msgpack`` or ``application/x-msgpack``). Other keys of the map reach
  the kernels too, as in ``Runtime.submit``.
* ``POST /v1/infer/{node}``: the same, entering the graph at ``node``.
* ``GET /healthz``: 200 while the process serves. ``GET /readyz``: 200 once every
  instance has started and warmed up (the runtime is running), else 503.
* ``GET /v1/graph``: nodes, edges and settings as JSON. ``GET /metrics``: Prometheus.

A success is ``{"result": ...}`` with status 200, in JSON unless the ``Accept`` header
(or, without one, a msgpack request) asks for msgpack. Arrays, tensors and bytes in it
are encoded as :mod:`torchweir.serve.codec` documents; failures map to statuses as
:mod:`torchweir.serve.status` tabulates, with ``{"error": {"type", "node", "message"}}``.


``make_app`` is imported on first use: the codec (which ``torchweir.bench``'s
``HttpTarget`` shares) must import where aiohttp, an optional dependency, is missing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torchweir.serve.app import make_app as make_app

__all__ = ["make_app"]


def __getattr__(name: str) -> Any:
    if name == "make_app":
        from torchweir.serve.app import make_app

        return make_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
