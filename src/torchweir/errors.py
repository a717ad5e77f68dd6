"""Every exception torchweir raises on purpose.

The tree::

    TorchweirError
    ├── ConfigError              a graph or node setting is wrong (raised at load / start)
    ├── SubmitError              the request was never run to completion by a kernel
    │   ├── Overloaded           a bounded mailbox was full and the policy is "reject"
    │   ├── DeadlineExceeded     the request's timeout passed (also a TimeoutError)
    │   ├── RuntimeClosed        the runtime is not running (not started, closing, closed)
    │   └── UnknownNode          the request names no node of the graph (also a LookupError)
    └── KernelError              a kernel failed on this request; ``__cause__`` is the original
        └── InputError           ... because this request's input was bad (corrupt JPEG, shape)

Each failed request gets its own exception instance, so a caller may attach notes or
tracebacks to it without touching its batch-mates' errors.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DeadlineExceeded",
    "InputError",
    "KernelError",
    "Overloaded",
    "RuntimeClosed",
    "SubmitError",
    "TorchweirError",
    "UnknownNode",
]


class TorchweirError(Exception):
    """Base class of every torchweir error."""


class ConfigError(TorchweirError):
    """A graph, node or kernel setting is invalid.

    The message names where the problem is (file, node, key), what was expected and,
    for unknown names, the closest match. The parts are also kept as attributes so that
    tools can render them.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        node: str | None = None,
        key: str | None = None,
    ) -> None:
        self.file = file
        self.node = node
        self.key = key
        self.detail = message
        where = ", ".join(
            part
            for part in (
                f"file {file!r}" if file else "",
                f"node {node!r}" if node else "",
                f"key {key!r}" if key else "",
            )
            if part
        )
        super().__init__(f"{where}: {message}" if where else message)


class SubmitError(TorchweirError):
    """The runtime did not run this request to completion for a reason of its own."""


class Overloaded(SubmitError):
    """A bounded mailbox was full and the overflow policy is to reject.

    Nothing was enqueued: the caller may retry later.
    """

    def __init__(self, node: str, capacity: int) -> None:
        self.node = node
        self.capacity = capacity
        super().__init__(f"node {node!r}: mailbox full ({capacity} requests queued); retry later")


class DeadlineExceeded(SubmitError, TimeoutError):
    """The request's deadline passed before it finished.

    It is also a ``TimeoutError`` so that generic timeout handling catches it.
    """

    def __init__(self, timeout: float, node: str | None = None) -> None:
        self.timeout = timeout
        self.node = node
        where = f" (last seen at node {node!r})" if node else ""
        super().__init__(f"request did not finish within its timeout of {timeout:g} s{where}")


class RuntimeClosed(SubmitError):
    """The runtime is not running: not started yet, closing or closed."""


class UnknownNode(SubmitError, LookupError):
    """The request's ``node_name`` is not a node of the graph, or it names none where the
    graph has several roots to choose from."""

    def __init__(self, message: str, node: str | None = None) -> None:
        self.node = node
        super().__init__(message)


class KernelError(TorchweirError):
    """A kernel failed on this request.

    ``node`` names the graph node whose kernel failed; ``__cause__`` holds the original
    exception, the way httpx wraps httpcore's errors.
    """

    def __init__(self, message: str, *, node: str | None = None) -> None:
        self.node = node
        self.detail = message
        super().__init__(f"node {node!r}: {message}" if node else message)

    def for_node(self, node: str) -> KernelError:
        """Return a fresh error of the same type, attributed to ``node``.

        Kernels raise ``InputError("truncated JPEG")`` without knowing where they run;
        the actor re-attributes the error to its node and chains the original.
        """
        error = type(self).__new__(type(self))
        KernelError.__init__(error, self.detail, node=node)
        error.__cause__ = self.__cause__ if self.__cause__ is not None else self
        return error


class InputError(KernelError):
    """This request's input is bad: undecodable bytes, a wrong shape, a wrong type.

    Only the request that carried it fails; its batch-mates run.
    """
