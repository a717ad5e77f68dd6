"""``tw.pipe(...)``: a thread-safe, synchronous facade with its own loop thread.

For plain threaded code (and torchpipe users): ``pipe(req)`` blocks the calling thread
while the request runs on the pipe's event loop. Many threads may call one pipe at once;
their requests share batches.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

from torchweir.graphs.builder import Graph
from torchweir.graphs.spec import GraphSpec
from torchweir.runtime.loop import new_event_loop
from torchweir.runtime.runtime import Runtime

__all__ = ["Pipe", "pipe"]


class Pipe:
    """A running :class:`Runtime` on a private loop thread, called synchronously.

    ``pipe(value)`` returns the result. ``pipe(request_dict)`` writes ``result`` into the
    dict (and raises if the request failed). ``pipe([dict, ...])`` runs the list as one
    burst and writes ``result`` into each dict that succeeded; a dict whose request
    failed gets no ``result`` and holds its exception under ``"error"``, so one corrupt
    image does not hide its neighbours' results (torchpipe's callers test for
    ``"result" in d``).

    Args:
        graph: what :class:`Runtime` accepts.
        **runtime_kwargs: passed to :class:`Runtime`.
    """

    def __init__(self, graph: Graph | GraphSpec | str | Path, **runtime_kwargs: Any) -> None:
        self._runtime = Runtime(graph, **runtime_kwargs)
        self._loop = new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="torchweir:pipe-loop", daemon=True
        )
        self._thread.start()
        self._lock = threading.Lock()
        self._closed = False
        try:
            self._call(self._runtime.start())
        except BaseException:
            self._stop_loop()
            raise

    @property
    def runtime(self) -> Runtime:
        """The runtime behind this pipe (its loop is the pipe's own thread)."""
        return self._runtime

    def __call__(
        self, x: Any, *, timeout: float | None = None, node_name: str | None = None
    ) -> Any:
        """Run ``x`` (a value, a request dict or a list of dicts) and wait for it."""
        if isinstance(x, list):
            self._run_list(x, timeout, node_name)
            return None
        result = self._call(self._runtime.submit(x, timeout=timeout, node_name=node_name))
        return None if isinstance(x, dict) else result

    def _run_list(self, requests: list[Any], timeout: float | None, node_name: str | None) -> None:
        for request in requests:
            if not isinstance(request, dict):
                raise TypeError(
                    f"pipe(list) takes request dicts, got {type(request).__name__}; "
                    "wrap values as {'data': value}"
                )
            request.pop("error", None)
        outcomes = self._call(
            self._runtime.submit_many(
                requests, timeout=timeout, node_name=node_name, return_exceptions=True
            )
        )
        for request, outcome in zip(requests, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                request.pop("result", None)
                request["error"] = outcome

    def close(self) -> None:
        """Drain pending requests, stop the instance threads and the loop thread."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        try:
            self._call(self._runtime.aclose())
        finally:
            self._stop_loop()

    def __enter__(self) -> Pipe:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _call(self, coro: Any) -> Any:
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("a Pipe cannot be called from its own loop thread; await submit()")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def _stop_loop(self) -> None:
        shutdown = self._loop.shutdown_default_executor()  # threads that joined workers
        asyncio.run_coroutine_threadsafe(shutdown, self._loop).result()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()


def pipe(graph: Graph | GraphSpec | str | Path, **runtime_kwargs: Any) -> Pipe:
    """Start a :class:`Pipe` for ``graph`` (or a TOML path): ``pipe("g.toml")(request)``."""
    return Pipe(graph, **runtime_kwargs)
