"""torchpipe's filters: per-request decisions taken before a node (or a step) runs.

A filter sees the request dict as it arrives and returns a :class:`Status`. The names and
meanings follow torchpipe v0 (``pipeline/src/filter.cpp``), where the code, not the docs,
decides: ``Run`` runs and ``Skip`` skips.

=====================  ============================================================
filter                 status
=====================  ============================================================
``swap`` (default)     ``result`` moves into ``data``, then RUN; no ``result``: NO_RESULT
``Run``, ``Continue``  RUN on the dict as it is
``Skip``               SKIP: the node is not run; its output is the dict as it came
``SerialSkip``         SERIAL_SKIP: skip this node and its single-successor chain
``SubGraphSkip``       SUBGRAPH_SKIP: skip the subgraph this node dominates
``Break``              BREAK: the request ends now, its current dict is the final dict
``or``, ``else``       RUN (on the same ``data``) if the parent produced no result or
                       failed, else SKIP (pass the parent's result on)
``Error``              ERROR: the request fails
=====================  ============================================================

Users add their own with :func:`register_filter`: a function ``dict -> Status``.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any

__all__ = [
    "FilterFn",
    "Status",
    "filter_names",
    "get_filter",
    "is_fallback",
    "register_filter",
]

Payload = dict[str, Any]


class Status(enum.Enum):
    """What happens to a request at a node, decided by the node's filter."""

    RUN = "Run"
    SKIP = "Skip"
    SERIAL_SKIP = "SerialSkip"
    SUBGRAPH_SKIP = "SubGraphSkip"
    BREAK = "Break"
    ERROR = "Error"
    NO_RESULT = "NoResult"  # swap found no result: the parent left the request without one


FilterFn = Callable[[Payload], Status]


def swap(payload: Payload) -> Status:
    """The default between nodes: the parent's ``result`` becomes this node's ``data``."""
    if "result" not in payload:
        return Status.NO_RESULT
    payload["data"] = payload.pop("result")
    return Status.RUN


def run(payload: Payload) -> Status:
    return Status.RUN


def skip(payload: Payload) -> Status:
    return Status.SKIP


def serial_skip(payload: Payload) -> Status:
    return Status.SERIAL_SKIP


def subgraph_skip(payload: Payload) -> Status:
    return Status.SUBGRAPH_SKIP


def break_(payload: Payload) -> Status:
    return Status.BREAK


def error(payload: Payload) -> Status:
    return Status.ERROR


def or_(payload: Payload) -> Status:
    """A fallback: run only when the parent produced no result (or failed)."""
    return Status.SKIP if "result" in payload else Status.RUN


_FILTERS: dict[str, FilterFn] = {}
_FALLBACKS: set[str] = {"or", "else"}

for _names, _fn in (
    (("swap",), swap),
    (("Run", "Continue", "run", "continue"), run),
    (("Skip", "skip"), skip),
    (("SerialSkip", "serial_skip", "serialskip"), serial_skip),
    (("SubGraphSkip", "subgraph_skip", "subgraphskip"), subgraph_skip),
    (("Break", "break"), break_),
    (("Error", "error"), error),
    (("or", "else"), or_),
):
    for _name in _names:
        _FILTERS[_name] = _fn


def register_filter(name: str, fn: FilterFn, *, fallback: bool = False) -> None:
    """Register a filter function under ``name`` (usable as ``filter = "name"``).

    Args:
        fallback: whether the filter also sees requests whose parent *failed* (as ``or``
            does); other filters never run for those, the request fails with the error.
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"filter names must be identifiers, got {name!r}")
    if not callable(fn):
        raise TypeError(f"filter {name!r} must be callable, got {type(fn).__name__}")
    _FILTERS[name] = fn
    if fallback:
        _FALLBACKS.add(name)
    else:
        _FALLBACKS.discard(name)


def get_filter(name: str) -> FilterFn:
    """The filter registered as ``name``.

    Raises:
        KeyError: no such filter.
    """
    return _FILTERS[name]


def is_fallback(name: str) -> bool:
    """Whether the filter runs for requests whose parent failed (``or``, ``else``)."""
    return name in _FALLBACKS


def filter_names() -> list[str]:
    return sorted(_FILTERS)
