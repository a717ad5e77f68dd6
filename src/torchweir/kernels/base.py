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

import msgspec

from torchweir.errors import ConfigError, KernelError

__all__ = ["FunctionKernel", "InstanceContext", "ItemKernel", "Kernel", "Outcome", "kernel"]

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
        keep_on_device: whether every child of the node runs on a GPU too, so that
            tensor outputs may stay on the device instead of being copied to the host.
    """

    node: str
    index: int = 0
    instance_num: int = 1
    device: str = "cpu"
    stream: Any = None
    keep_on_device: bool = False


class Kernel:
    """Base class for kernels that see whole request dicts (torchpipe's backends).

    Subclasses override :meth:`forward`. ``max_batch`` is the largest batch the kernel
    accepts when the node does not set ``max``. ``device`` is ``"cuda"`` for kernels that
    need a GPU: their node's instances are then bound to a GPU and a CUDA stream.
    """

    max_batch: int = 1
    device: str = "cpu"

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> Kernel:
        """Build from a node's parameters, as a TOML backend name does.

        torchpipe hands every node key to every backend, so keys the constructor does not
        take are ignored. Values are converted to the constructor's annotations, so that
        ``resize_h = "224"`` and ``resize_h = 224`` mean the same. Override this for keys
        that are not identifiers (``model::cache``).

        Raises:
            ConfigError: a value does not convert (names the key and the value).
        """
        signature = _signature(cls)
        hints = {
            name: p.annotation
            for name, p in signature.parameters.items()
            if p.annotation is not p.empty and not isinstance(p.annotation, str)
        }
        if any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values()):
            accepted = dict(params)
        else:
            accepted = {k: v for k, v in params.items() if k in signature.parameters}
        return cls(**{key: _convert(key, value, hints.get(key)) for key, value in accepted.items()})

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

    def close(self) -> None:
        """Release what :meth:`setup` took (a process, a file); called once on the object
        ``setup`` returned, in the instance's thread, when the runtime stops."""


class ItemKernel(Kernel):
    """A kernel whose items are independent: it runs item by item inside one batch call.

    Subclasses implement :meth:`process` for one request dict. An exception raised there
    fails only that item (raise :class:`~torchweir.errors.InputError` for bad input); the
    rest of the batch still runs. Most CPU image operations are item kernels: they gain
    nothing from stacking, but still save one thread hand-off per item when batched.
    """

    def process(self, item: Payload) -> None:
        """Read ``item["data"]``, set ``item["result"]`` (and any other keys)."""
        raise NotImplementedError(f"{type(self).__name__} must implement process()")

    def forward(self, items: list[Payload]) -> Outcome:
        errors: list[BaseException | None] | None = None
        for i, item in enumerate(items):
            try:
                self.process(item)
            except Exception as exc:
                if errors is None:
                    errors = [None] * len(items)
                errors[i] = exc
        return errors


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


def _signature(cls: type[Kernel]) -> inspect.Signature:
    try:
        return inspect.signature(cls, eval_str=True)
    except Exception:  # unresolvable annotations: values pass through unconverted
        return inspect.signature(cls)


def _convert(key: str, value: Any, hint: Any) -> Any:
    if hint is None or hint is Any:
        return value
    try:
        return msgspec.convert(value, hint, strict=False)
    except (msgspec.ValidationError, TypeError) as exc:
        raise ConfigError(f"{exc} (got {value!r})", key=key) from None


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
