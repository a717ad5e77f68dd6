"""From a :class:`GraphSpec` to wired actors and (not yet started) instance workers."""

from __future__ import annotations

from dataclasses import dataclass

from torchweir.actors.actor import Actor
from torchweir.actors.clock import Clock
from torchweir.actors.mailbox import Mailbox
from torchweir.actors.policy import BatchPolicy
from torchweir.actors.routing import route
from torchweir.actors.worker import InstanceWorker
from torchweir.errors import ConfigError
from torchweir.graphs.spec import GraphSpec, NodeSpec
from torchweir.graphs.validate import closest
from torchweir.kernels import registry
from torchweir.kernels.base import InstanceContext, Kernel


@dataclass
class Built:
    """The run-time form of a graph."""

    actors: dict[str, Actor]
    workers: dict[str, list[InstanceWorker]]
    roots: tuple[str, ...]


def build(graph: GraphSpec, clock: Clock) -> Built:
    """Create one actor per node, wire edges, and create each node's workers.

    Raises:
        ConfigError: a backend name is unknown, or a kernel rejects its parameters.
    """
    actors: dict[str, Actor] = {}
    workers: dict[str, list[InstanceWorker]] = {}
    for spec in graph.nodes:
        kernel = resolve_kernel(spec)
        max_batch = spec.max if spec.max is not None else kernel.max_batch
        policy = BatchPolicy(max_batch=max_batch, timeout=spec.batching_timeout / 1000.0)
        actor = Actor(spec.name, policy, Mailbox(spec.name, spec.max_queue, clock), clock, route)
        actors[spec.name] = actor
        workers[spec.name] = [
            InstanceWorker(
                kernel,
                InstanceContext(node=spec.name, index=i, instance_num=spec.instance_num),
                actor.batch_done,
            )
            for i in range(spec.instance_num)
        ]
    for spec in graph.nodes:
        actor = actors[spec.name]
        actor.children = [actors[name] for name in spec.next]
        for child in actor.children:
            child.parents.append(actor)
    for actor in actors.values():
        actor.ancestors = _closure(actor, "parents")
        actor.descendants = _closure(actor, "children")
    return Built(actors=actors, workers=workers, roots=graph.roots())


def resolve_kernel(spec: NodeSpec) -> Kernel:
    """The node's kernel object: given directly, or built from its backend name."""
    if spec.kernel is not None:
        if not isinstance(spec.kernel, Kernel):
            raise ConfigError(
                f"expected a Kernel, got {type(spec.kernel).__name__}",
                node=spec.name,
                key="backend",
            )
        return spec.kernel
    name = spec.backend
    if not registry.is_registered(name):
        raise ConfigError(
            f"unknown backend {name!r}{closest(name, registry.registered_names())}",
            node=spec.name,
            key="backend",
        )
    try:
        return registry.create_kernel(name, dict(spec.params))
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"backend {name!r} rejected its parameters: {exc}", node=spec.name, key="backend"
        ) from exc


def _closure(actor: Actor, direction: str) -> tuple[Actor, ...]:
    seen: dict[int, Actor] = {}
    stack = list(getattr(actor, direction))
    while stack:
        other = stack.pop()
        if id(other) not in seen:
            seen[id(other)] = other
            stack.extend(getattr(other, direction))
    return tuple(seen.values())
