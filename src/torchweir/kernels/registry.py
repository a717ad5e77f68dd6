"""Names for kernels, so that TOML backends such as ``DecodeMat`` resolve to code.

A registered *factory* takes the node's kernel parameters (a dict of the node's
non-scheduling keys) and returns a :class:`Kernel`. Kernel classes register themselves
under torchpipe's names; users add theirs with :func:`register_kernel`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from torchweir.kernels.base import Kernel

__all__ = ["KernelFactory", "create_kernel", "is_registered", "register_kernel", "registered_names"]

KernelFactory = Callable[[dict[str, Any]], Kernel]
_FACTORIES: dict[str, KernelFactory] = {}

K = TypeVar("K", bound=type[Kernel])


def register_kernel(name: str, factory: KernelFactory | type[Kernel] | Kernel) -> None:
    """Register ``factory`` under ``name`` (replacing any earlier one).

    Args:
        name: the name backends use, e.g. ``"DecodeMat"``.
        factory: a :class:`Kernel` subclass (built with ``cls.from_params(params)``), a
            kernel object (shared by every node that names it), or a callable
            ``params -> Kernel``.
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"kernel names must be identifiers, got {name!r}")
    if isinstance(factory, type) and issubclass(factory, Kernel):
        _FACTORIES[name] = factory.from_params
    elif isinstance(factory, Kernel):
        shared = factory
        _FACTORIES[name] = lambda params: shared
    elif callable(factory):
        _FACTORIES[name] = factory  # type: ignore[assignment]
    else:
        raise TypeError(f"cannot register {factory!r} as kernel {name!r}: not a Kernel")


def registered(name: str) -> Callable[[K], K]:
    """Class decorator form of :func:`register_kernel`."""

    def wrap(cls: K) -> K:
        register_kernel(name, cls)
        return cls

    return wrap


def is_registered(name: str) -> bool:
    return name in _FACTORIES


def registered_names() -> list[str]:
    return sorted(_FACTORIES)


def create_kernel(name: str, params: dict[str, Any]) -> Kernel:
    """Build the kernel registered as ``name`` for a node with ``params``.

    Raises:
        KeyError: ``name`` is not registered.
    """
    kernel = _FACTORIES[name](params)
    if not isinstance(kernel, Kernel):
        raise TypeError(f"factory of {name!r} returned {type(kernel).__name__}, not a Kernel")
    return kernel
