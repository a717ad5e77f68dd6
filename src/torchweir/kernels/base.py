"""The kernel contract: compute over a batch, with no threads and no event loop.

Two ways to write one:

* ``@tw.kernel(max=16)`` over a function ``fn(batch: list) -> list``. It gets the ``data``
  of each request and returns one result per item. An exception instance in an item's
  slot fails only that request.
* A :class:`Kernel` subclass, torchpipe style, that sees the whole request dicts: it reads
  ``data`` and writes ``result`` (and any other keys) in place.

Each instance thread calls :meth:`Kernel.setup` once, in that thread, before its first
batch. A kernel that keeps per-instance state (a CUDA graph, a TensorRT context) returns a
fresh copy there; a stateless one returns itself.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, overload

from torchweir.errors import KernelError

__all__ = ["FunctionKernel", "InstanceContext", "Kernel", "Outcome", "kernel"]

Payload = dict[str, Any]
#: What ``Kernel.forward`` returns: ``None`` when every item succeeded, otherwise one
#: slot per item holding ``None`` (success) or the exception that failed that item.
Outcome = Sequence[BaseException | None] | None


@dataclass(frozen=True, slots=True)
class InstanceContext:
    """Where one instance of a node runs.

    Attributes:
        node: the graph node's name.
        index: this instance's number, ``0 <= index < instance_num``.
        instance_num: how many instances the node has.
        device: ``"cpu"`` or a CUDA device such as ``"cuda:0"``.
        stream: the instance's own CUDA stream, or ``None`` on the CPU.
    """

    node: str
    index: int = 0
    instance_num: int = 1
    device: str = "cpu"
    stream: Any = None


class Kernel:
    """Base class for kernels that see whole request dicts (torchpipe's backends).

    Subclasses override :meth:`forward`. ``max_batch`` is the largest batch the kernel
    accepts when the node does not set ``max``.
    """

    max_batch: int = 1

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> Kernel:
        """Build from a node's parameters, as a TOML backend name does.

        torchpipe hands every node key to every backend, so keys the constructor does not
        take are ignored. Override this for keys that are not identifiers (``model::cache``).
        """
        signature = inspect.signature(cls)
        if any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values()):
            return cls(**params)
        return cls(**{key: value for key, value in params.items() if key in signature.parameters})

    def setup(self, ctx: InstanceContext) -> Kernel:
        """Prepare one instance, in its own thread; return the object that will run it."""
        return self

    def forward(self, items: list[Payload]) -> Outcome:
        """Run one batch: read each item's ``data``, write its ``result``.

        Returns:
            ``None`` if all items succeeded, else a list with ``None`` for each success
            and an exception instance for each failed item.

        Raises:
            Exception: anything raised fails every request of this batch, and only those.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement forward()")


class FunctionKernel(Kernel):
    """A kernel made from a function over a batch of ``data`` values."""

    def __init__(self, fn: Callable[[list[Any]], Sequence[Any]], max_batch: int = 1) -> None:
        if inspect.iscoroutinefunction(fn):
            raise TypeError(
                f"kernel {fn.__qualname__!r} is async; kernels run on instance threads and "
                "must be plain functions"
            )
        if isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1:
            raise ValueError(f"kernel max must be an int >= 1, got {max_batch!r}")
        self.fn = fn
        self.max_batch = max_batch
        self.__name__ = getattr(fn, "__name__", type(fn).__name__)
        self.__doc__ = fn.__doc__

    def __repr__(self) -> str:
        return f"<kernel {self.__name__} max={self.max_batch}>"

    def __call__(self, batch: list[Any]) -> Sequence[Any]:
        """Call the function directly, outside any runtime (handy in tests)."""
        return self.fn(batch)

    def forward(self, items: list[Payload]) -> Outcome:
        results = self.fn([item["data"] for item in items])
        if not isinstance(results, Sequence) or isinstance(results, (str, bytes)):
            raise KernelError(
                f"kernel {self.__name__!r} must return a list with one result per item, "
                f"got {type(results).__name__}"
            )
        if len(results) != len(items):
            raise KernelError(
                f"kernel {self.__name__!r} returned {len(results)} results "
                f"for a batch of {len(items)}"
            )
        errors: list[BaseException | None] | None = None
        for i, (item, result) in enumerate(zip(items, results, strict=True)):
            if isinstance(result, BaseException):
                if errors is None:
                    errors = [None] * len(items)
                errors[i] = result
            else:
                item["result"] = result
        return errors


F = TypeVar("F", bound=Callable[[list[Any]], Sequence[Any]])


@overload
def kernel(fn: F, /) -> FunctionKernel: ...


@overload
def kernel(*, max: int = 1) -> Callable[[F], FunctionKernel]: ...


def kernel(
    fn: F | None = None, /, *, max: int = 1
) -> FunctionKernel | Callable[[F], FunctionKernel]:
    """Turn a function over a batch into a kernel.

    ``fn`` gets the list of ``data`` values of one batch (at most ``max`` of them) and
    returns a list of results of the same length. Put an exception instance in a slot to
    fail only that request.

    Usable bare (``@tw.kernel``) or with arguments (``@tw.kernel(max=16)``).
    """
    if fn is not None:
        return FunctionKernel(fn, max_batch=max)

    def wrap(f: F) -> FunctionKernel:
        return FunctionKernel(f, max_batch=max)

    return wrap
