"""From a :class:`GraphSpec` to wired actors and (not yet started) instance workers."""

from __future__ import annotations

import functools
import pickle
import warnings
from dataclasses import dataclass, field
from typing import Any

from torchweir.actors.actor import Actor
from torchweir.actors.clock import Clock
from torchweir.actors.cuda import (
    CudaBinding,
    cuda_device_count,
    hardware_queue_warning,
    place_instances,
)
from torchweir.actors.mailbox import Mailbox
from torchweir.actors.policy import BatchPolicy
from torchweir.actors.process import ProcessWorker
from torchweir.actors.routing import Fold, Links, route
from torchweir.actors.worker import InstanceWorker
from torchweir.errors import ConfigError
from torchweir.graphs.backend import Backend, parse_backend
from torchweir.graphs.mapping import MapRule, parse_map
from torchweir.graphs.spec import GraphSpec, NodeSpec
from torchweir.graphs.spill import spill_spec
from torchweir.graphs.topology import Region, reachable, serial_region, subgraph_region
from torchweir.kernels import filters, registry
from torchweir.kernels.base import InstanceContext, Kernel
from torchweir.kernels.compose import SEQUENTIAL_NAMES, STREAM_WRAPPERS, Identity, Sequential
from torchweir.kernels.imports import import_object

#: What runs a node's batches: an instance thread, or a child process driven by the loop.
Worker = InstanceWorker | ProcessWorker


@dataclass
class Built:
    """The run-time form of a graph.

    Attributes:
        workers: each node's own instances.
        spill: each node's spill pool, for the nodes that have one (:mod:`..graphs.spill`).
    """

    actors: dict[str, Actor]
    workers: dict[str, list[Worker]]
    entry: str | None
    stream_bound: dict[str, bool]
    spill: dict[str, list[Worker]] = field(default_factory=dict)

    def all_workers(self) -> list[Worker]:
        """Every instance of every node, the spill pools' included."""
        groups = [*self.workers.values(), *self.spill.values()]
        return [worker for group in groups for worker in group]


@dataclass
class _Pool:
    """One node's instances of one backend: its own, or its spill pool."""

    spec: NodeSpec
    kernel: Kernel
    stream_bound: bool
    policy: BatchPolicy
    devices: list[int] | None = None


def build(graph: GraphSpec, clock: Clock) -> Built:
    """Create one actor per node, its kernel and workers, and wire the edges.

    Raises:
        ConfigError: a backend cannot be built (unknown name, bad parameters).
    """
    actors: dict[str, Actor] = {}
    pools: dict[str, list[_Pool]] = {}
    data_read = {spec.name: data_read_after(graph, spec.name) for spec in graph.nodes}
    gpus = cuda_device_count()
    for spec in graph.nodes:
        specs = [spec]
        if (spilled := spill_spec(spec)) is not None:
            specs.append(spilled)
        pools[spec.name] = [_pool(each, gpus, fuse=not data_read[spec.name]) for each in specs]
        own, *spill = pools[spec.name]
        actors[spec.name] = Actor(
            spec.name,
            own.policy,
            Mailbox(spec.name, spec.max_queue, clock),
            clock,
            route,
            spill_policy=spill[0].policy if spill else None,
        )
    on_a_gpu = any(pool.devices is not None for group in pools.values() for pool in group)
    if on_a_gpu and (why := hardware_queue_warning()):
        warnings.warn(why, RuntimeWarning, stacklevel=3)
    on_gpu = {name for name, group in pools.items() if group[0].devices is not None}
    built: dict[str, list[list[Worker]]] = {}
    for spec in graph.nodes:
        keep = bool(spec.next) and all(child in on_gpu for child in spec.next)
        built[spec.name] = [
            _workers(pool, actors[spec.name], keep, data_read[spec.name])
            for pool in pools[spec.name]
        ]
    _wire(graph, actors)
    return Built(
        actors,
        {name: groups[0] for name, groups in built.items()},
        graph.default_entry(),
        {name: group[0].stream_bound for name, group in pools.items()},
        {name: groups[1] for name, groups in built.items() if len(groups) > 1},
    )


def _pool(spec: NodeSpec, gpus: int, *, fuse: bool) -> _Pool:
    """Build one pool's kernel, batch policy and GPU placement.

    A pool runs on GPUs if its kernel needs CUDA, or if a stream wrapper (``Torch[...]``)
    asks for one and a GPU is visible; on a machine without one, ``Torch[...]`` nodes run
    on the CPU, so torchpipe configs of CPU stages load anywhere.
    """
    kernel, stream_bound = node_kernel(spec, fuse=fuse)
    max_batch = spec.max if spec.max is not None else kernel.max_batch
    policy = BatchPolicy(max_batch=max_batch, timeout=spec.batching_timeout / 1000.0)
    pool = _Pool(spec, kernel, stream_bound, policy)
    if kernel.device.startswith("cuda") or (stream_bound and gpus > 0):
        try:
            pool.devices = place_instances(spec.instance_num, _device_id(spec), gpus)
        except ConfigError as exc:
            raise ConfigError(exc.detail, node=spec.name, key=exc.key) from None
    return pool


def _device_id(spec: NodeSpec) -> int | None:
    value = spec.params.get("device_id")
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ConfigError(
            f"expected a GPU index, got {value!r}", node=spec.name, key="device_id"
        ) from None


def data_read_after(graph: GraphSpec, name: str) -> bool:
    """Whether anything after node ``name`` may read the ``data`` its kernel leaves.

    The default hop does not: a child with the ``swap`` filter and one parent overwrites
    ``data`` with ``result``, and a leaf's caller gets ``result`` (or its own input dict).
    A filter, a ``map``, a join, or a ``map`` further on that names the node may. A
    process instance need not send back what nothing reads (a decode node's last
    ``data`` is the decoded image, four times the size of its result).
    """
    parents = graph.parents()
    for child in graph.children()[name]:
        spec = graph.node(child)
        if spec.filter or spec.map or len(parents[child]) > 1:
            return True
    return name in _read_by_map(_map_rules(graph), parents)


def _map_rules(graph: GraphSpec) -> dict[str, tuple[MapRule, ...]]:
    return {spec.name: parse_map(spec.map, node=spec.name) for spec in graph.nodes if spec.map}


def _read_by_map(rules: dict[str, tuple[MapRule, ...]], parents: dict[str, list[str]]) -> set[str]:
    """The nodes a ``map`` names further on than its own parents: their outputs are kept
    for it."""
    return {
        source
        for name, node_rules in rules.items()
        for source, _ in node_rules
        if source and source not in parents[name]
    }


def _workers(pool: _Pool, actor: Actor, keep: bool, data_read: bool) -> list[Worker]:
    """Start-ready workers for one pool; ``keep`` leaves results on the GPU (every child
    runs on one)."""
    spec, devices = pool.spec, pool.devices
    keep = keep and devices is not None
    completion = str(spec.params.get("completion", "event"))
    priority = str(spec.params.get("stream_priority", "normal"))
    _cuda_binding(spec, completion, priority)  # bad values fail on a CPU machine too
    prefetch = _prefetch(spec)
    in_process = _executor(spec, on_gpu=devices is not None) == "process"
    workers: list[Worker] = []
    for i in range(spec.instance_num):
        ctx = InstanceContext(
            node=spec.name,
            index=i,
            instance_num=spec.instance_num,
            device="cpu" if devices is None else f"cuda:{devices[i]}",
            keep_on_device=keep,
        )
        if in_process:
            factory = functools.partial(built_kernel, spec, fuse=not data_read)
            workers.append(
                ProcessWorker(
                    factory, ctx, actor.batch_done, prefetch=prefetch, send_data=data_read
                )
            )
            continue
        binding = None if devices is None else _cuda_binding(spec, completion, priority)
        workers.append(
            InstanceWorker(pool.kernel, ctx, actor.batch_done, binding=binding, prefetch=prefetch)
        )
    return workers


def _executor(spec: NodeSpec, *, on_gpu: bool) -> str:
    """``thread`` (default) or ``process`` (see :mod:`torchweir.actors.process`)."""
    executor = str(spec.params.get("executor", "thread"))
    if executor not in ("thread", "process"):
        raise ConfigError(
            f"executor must be 'thread' or 'process', got {executor!r}",
            node=spec.name,
            key="executor",
        )
    if executor == "process":
        if on_gpu:
            raise ConfigError(
                "executor 'process' is for CPU kernels; this node runs on a GPU",
                node=spec.name,
                key="executor",
            )
        try:
            pickle.dumps(spec)
        except Exception as exc:
            raise ConfigError(
                f"executor 'process' builds the kernel in a child process, so it must "
                f"pickle; this one does not ({type(exc).__name__}: {exc}). Register it in "
                f"an importable module or give its import path",
                node=spec.name,
                key="executor",
            ) from None
    return executor


def built_kernel(spec: NodeSpec, fuse: bool = True) -> Kernel:
    """The node's kernel alone (what a process instance builds in its child)."""
    return node_kernel(spec, fuse)[0]


def _prefetch(spec: NodeSpec) -> int:
    value = spec.params.get("prefetch", 0)
    try:
        prefetch = int(value)
    except (TypeError, ValueError):
        prefetch = -1
    if isinstance(value, bool) or prefetch < 0:
        raise ConfigError(
            f"expected an integer >= 0, got {value!r}", node=spec.name, key="prefetch"
        )
    return prefetch


def _cuda_binding(spec: NodeSpec, completion: str, priority: str) -> CudaBinding:
    try:
        return CudaBinding(completion, priority)
    except ConfigError as exc:
        raise ConfigError(exc.detail, node=spec.name, key=exc.key) from None


def _wire(graph: GraphSpec, actors: dict[str, Actor]) -> None:
    children, parents = graph.children(), graph.parents()
    below = {name: reachable(children, name) for name in graph.names}
    above = {name: reachable(parents, name) for name in graph.names}
    rules = _map_rules(graph)
    read_by_map = _read_by_map(rules, parents)

    def fold(region: Region) -> Fold:
        folded, exits = region
        return folded, tuple((actors[child], via) for child, via in exits)

    def others(names: set[str], name: str) -> tuple[Actor, ...]:
        return tuple(actors[n] for n in graph.names if n in names and n != name)

    for spec in graph.nodes:
        actor = actors[spec.name]
        actor.children = [actors[name] for name in spec.next]
        actor.parents = [actors[name] for name in parents[spec.name]]
        actor.ancestors = others(above[spec.name], spec.name)
        actor.descendants = others(below[spec.name], spec.name)
        filter_name = spec.filter or ("run" if spec.map or not parents[spec.name] else "swap")
        actor.links = Links(
            filter_name=spec.filter,
            filter=filters.get_filter(filter_name),
            fallback=filters.is_fallback(filter_name),
            map_rules=rules.get(spec.name, ()),
            parents=tuple(parents[spec.name]),
            joins=_join_counts(spec.name, parents[spec.name], below),
            serial=fold(serial_region(children, parents, spec.name)),
            subgraph=fold(subgraph_region(children, parents, spec.name)),
            record=spec.name in read_by_map,
        )


def _join_counts(name: str, parents: list[str], reach: dict[str, set[str]]) -> dict[str, int]:
    """For each entry node, how many of ``name``'s parents a request entering there visits."""
    counts = {}
    for entry, visited in reach.items():
        count = sum(1 for parent in parents if parent in visited)
        if count > 1:
            counts[entry] = count
    return counts


def node_kernel(spec: NodeSpec, fuse: bool = True) -> tuple[Kernel, bool]:
    """The node's kernel, and whether it runs behind a stream wrapper (``Torch[...]``).

    ``fuse`` lets ``S[...]`` chains fuse their steps (see :class:`Sequential`); the
    builder turns it off where the graph reads the ``data`` a chain leaves.

    Raises:
        ConfigError: unknown names, bad parameters, a wrapper given two backends.
    """
    if spec.kernel is not None:
        if not isinstance(spec.kernel, Kernel):
            raise ConfigError(
                f"expected a Kernel, got {type(spec.kernel).__name__}",
                node=spec.name,
                key="backend",
            )
        return spec.kernel, False
    backend = parse_backend(spec.backend, node=spec.name)
    return _build(backend, spec.kernel_params(), spec.name, fuse)


def _build(backend: Backend, params: dict[str, Any], node: str, fuse: bool) -> tuple[Kernel, bool]:
    params = {**params, **dict(backend.params)}
    name, args = backend.name, backend.args
    if name in STREAM_WRAPPERS or name == "Python":
        if len(args) > 1:
            raise ConfigError(
                f"{name}[...] wraps one backend, got {len(args)}", node=node, key="backend"
            )
        if not args:
            return Identity(), name in STREAM_WRAPPERS
        kernel, stream = _build(args[0].backend, params, node, fuse)
        return kernel, stream or name in STREAM_WRAPPERS
    if name in SEQUENTIAL_NAMES:
        built = [(step.filter, *_build(step.backend, params, node, fuse)) for step in args]
        try:
            sequential = Sequential(
                [(step_filter, kernel) for step_filter, kernel, _ in built], fuse
            )
        except ValueError as exc:
            raise ConfigError(str(exc), node=node, key="backend") from None
        return sequential, any(stream for _, _, stream in built)
    if args:
        raise ConfigError(f"backend {name!r} takes no [...] arguments", node=node, key="backend")
    return _leaf_kernel(name, params, node), False


def _leaf_kernel(name: str, params: dict[str, Any], node: str) -> Kernel:
    try:
        if ":" in name:
            return _imported_kernel(name, params)
        return registry.create_kernel(name, params)
    except KeyError:
        raise ConfigError(f"unknown backend {name!r}", node=node, key="backend") from None
    except ConfigError as exc:
        if exc.node is None:
            raise ConfigError(exc.detail, file=exc.file, node=node, key=exc.key) from exc
        raise
    except (TypeError, ValueError, ImportError, AttributeError) as exc:
        raise ConfigError(
            f"backend {name!r} rejected its parameters: {exc}", node=node, key="backend"
        ) from exc


def _imported_kernel(path: str, params: dict[str, Any]) -> Kernel:
    found = import_object(path)
    if isinstance(found, type) and issubclass(found, Kernel):
        return found.from_params(params)
    if isinstance(found, Kernel):
        return found
    raise TypeError(f"{path} is a {type(found).__name__}, not a Kernel class or instance")
