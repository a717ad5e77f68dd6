"""A node's spill pool: instances of a second backend that take the batches the node's
own instances have no room for.

A GPU decode node, for one, can keep the GPU to itself at low load and spill to CPU
decoders in child processes when both of its instances are busy. The pool shares the
node's mailbox, routing and parameters; only the backend and the keys that say how its
instances run differ. In TOML (the Python builder takes the same keys)::

    [decode]
    backend = "S[DecodeTensor,ResizeTensor]"
    instance_num = 2
    max = 64
    resize_h = 224
    resize_w = 224
    spill = "S[DecodeMat,ResizeMat,cvtColorMat,Mat2Tensor]"
    spill_instance_num = 8
    spill_executor = "process"
    spill_max = 8
    spill_color = "rgb"

``spill_<key>`` overrides ``<key>`` for the pool alone: ``instance_num`` (default 1),
``max`` (default: the pool's kernel's own), ``batching_timeout``, ``executor``,
``prefetch`` or any kernel parameter. Keys that belong to the node as a whole (``next``,
``map``, ``filter``, ``max_queue``, ``min``) cannot be overridden. The pool must compute
what the node computes: its results go where the node's go, so a request cannot tell
which pool ran it, except for the rounding of two decoders.
"""

from __future__ import annotations

from typing import Any

from torchweir.errors import ConfigError
from torchweir.graphs.spec import NodeSpec
from torchweir.kernels.base import Kernel

__all__ = ["SPILL_KEY", "spill_spec"]

#: The node parameter holding the spill pool's backend expression.
SPILL_KEY = "spill"
_PREFIX = SPILL_KEY + "_"
#: Settings of the node as a whole, which a pool cannot have its own of.
_NODE_WIDE = ("next", "map", "filter", "max_queue", "min", SPILL_KEY)


def spill_spec(spec: NodeSpec, *, file: str | None = None) -> NodeSpec | None:
    """The spill pool of node ``spec`` as a spec of its own (same name), or ``None``.

    ``spill`` is a backend expression, or from Python a :class:`Kernel` object.

    Raises:
        ConfigError: ``spill`` is not a backend expression, a ``spill_`` key is given
            without ``spill``, overrides a node-wide key or has a bad value; the error
            names the ``spill_`` key.
    """
    from torchweir.graphs.validate import node_spec, split_node_keys

    params = spec.params
    own = {key[len(_PREFIX) :]: value for key, value in params.items() if key.startswith(_PREFIX)}
    backend = params.get(SPILL_KEY)
    where: dict[str, Any] = {"file": file, "node": spec.name}
    if backend is None:
        if own:
            first = _PREFIX + next(iter(own))
            raise ConfigError(f"{first} is set but {SPILL_KEY} is not", key=first, **where)
        return None
    if isinstance(backend, Kernel):
        pool: dict[str, Any] = {"kernel": backend}
    elif isinstance(backend, str) and backend.strip():
        pool = {"backend": backend}
    else:
        raise ConfigError(
            f"expected a backend expression or a Kernel, got {backend!r}", key=SPILL_KEY, **where
        )
    if "backend" in own or "kernel" in own:
        first = _PREFIX + ("backend" if "backend" in own else "kernel")
        raise ConfigError(f"give the pool's backend as {SPILL_KEY} = ...", key=first, **where)
    for key in _NODE_WIDE:
        if key in own:
            why = (
                "a spill pool has no spill pool of its own"
                if key == SPILL_KEY
                else f"{key} belongs to the whole node; the spill pool shares it"
            )
            raise ConfigError(why, key=_PREFIX + key, **where)
    shared = {
        key: value
        for key, value in params.items()
        if key != SPILL_KEY and not key.startswith(_PREFIX)
    }
    raw: dict[str, Any] = {
        **shared,
        "batching_timeout": spec.batching_timeout,
        "instance_num": 1,
        **own,
        **pool,
    }
    try:
        return node_spec(spec.name, split_node_keys(raw), file=file)
    except ConfigError as exc:
        key = SPILL_KEY if exc.key in (None, "backend") else _PREFIX + exc.key
        raise ConfigError(exc.detail, key=key, **where) from None
