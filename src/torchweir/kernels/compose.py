"""Kernels that compose others: ``Sequential`` (``S``), and ``Identity``.

``S[DecodeMat,ResizeMat,cvtColorMat,Mat2Tensor]`` runs its steps one after another inside a
single instance-thread call, so a chain of CPU stages costs one hand-off per batch, not
one per stage. Between steps the default ``swap`` filter moves ``result`` into ``data``;
a ``(filter)`` prefix changes that per step, e.g. ``S[DecodeTensor,(or)DecodeMat]`` decodes
on the CPU only the images the GPU decoder failed on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torchweir.errors import KernelError
from torchweir.kernels.base import InstanceContext, ItemKernel, Kernel, Outcome, Payload
from torchweir.kernels.filters import FilterFn, Status, get_filter, is_fallback
from torchweir.kernels.registry import registered

__all__ = [
    "SEQUENTIAL_NAMES",
    "STREAM_WRAPPERS",
    "STRUCTURAL_NAMES",
    "Identity",
    "Sequential",
    "fuse_runs",
    "register_fusion",
]

#: Wrappers meaning "runs on an instance thread with its own CUDA stream and device_id".
STREAM_WRAPPERS = frozenset({"Torch", "SyncTensor", "StreamGuard"})
SEQUENTIAL_NAMES = frozenset({"Sequential", "S"})
#: Names the graph builder interprets itself; ``Python[name]`` just names a kernel.
STRUCTURAL_NAMES = STREAM_WRAPPERS | SEQUENTIAL_NAMES | {"Python"}

Steps = list[tuple[str, Kernel]]
#: Rewrites of a step list into an equivalent, faster one (registered by kernel packages).
_FUSIONS: list[Callable[[Steps], Steps]] = []


def register_fusion(rule: Callable[[Steps], Steps]) -> None:
    """Add a rule that ``Sequential`` applies to its steps (e.g. OpenCV call fusion)."""
    _FUSIONS.append(rule)


def fuse_runs(
    steps: Steps, width: int, fusable: Callable[[Steps], bool], fuse: Callable[[Steps], Kernel]
) -> Steps:
    """Replace each run of ``width`` consecutive steps that ``fusable`` accepts with one
    step, ``fuse(run)`` under the run's first filter: the body of a fusion rule. Runs are
    found left to right and do not overlap."""
    fused: Steps = []
    i = 0
    while i < len(steps):
        run = steps[i : i + width]
        if len(run) == width and fusable(run):
            fused.append((run[0][0], fuse(run)))
            i += width
        else:
            fused.append(steps[i])
            i += 1
    return fused


@registered("Identity")
class Identity(Kernel):
    """``result = data``: a no-op node, and torchpipe's default backend."""

    def forward(self, items: list[Payload]) -> Outcome:
        for item in items:
            item["result"] = item["data"]
        return None


class Sequential(Kernel):
    """Steps run in order on each item, each behind a filter (``swap`` by default).

    Per item, before step *i* its filter decides: ``Run`` (run the step), ``Skip`` (leave
    the item as it is for the next step), ``Break``/``SerialSkip``/``SubGraphSkip`` (leave
    the chain now, as it is). An item that failed a step leaves the chain with that error,
    unless a later fallback step (``(or)``) runs it again from its current ``data``.

    Args:
        steps: ``(filter name, kernel)`` pairs; the first step's filter must be empty.
        fuse: rewrite the steps with the registered fusions (:func:`register_fusion`). A
            fused step leaves its own input in ``data``, where the chain leaves the last
            step's input, so the graph builder turns fusion off where something after the
            node reads its ``data``.
    """

    def __init__(self, steps: Sequence[tuple[str, Kernel]], fuse: bool = True) -> None:
        if not steps:
            raise ValueError("Sequential needs at least one step")
        if steps[0][0] not in ("", "Run", "Continue", "run", "continue"):
            raise ValueError(f"the first step always runs; remove its filter ({steps[0][0]})")
        named = [(name or ("run" if i == 0 else "swap"), k) for i, (name, k) in enumerate(steps)]
        for rule in _FUSIONS if fuse else ():
            named = rule(named)
        self.fuse = fuse
        self.steps = named
        self._plan = [(name, k, get_filter(name), is_fallback(name)) for name, k in self.steps]
        # Chains of item kernels (the CPU image ops) run item by item: each image goes
        # through every step while it is still in cache, instead of step by step.
        self._item_wise = all(isinstance(k, ItemKernel) for _, k in self.steps)
        limits = [k.max_batch for _, k in self.steps if k.max_batch > 1]
        self.max_batch = min(limits) if limits else 1
        gpu = [k.device for _, k in self.steps if k.device.startswith("cuda")]
        self.device = gpu[0] if gpu else "cpu"

    def __repr__(self) -> str:
        inner = ",".join(f"({name}){type(k).__name__}" for name, k in self.steps)
        return f"Sequential[{inner}]"

    def setup(self, ctx: InstanceContext) -> Kernel:
        return Sequential([(name, kernel.setup(ctx)) for name, kernel in self.steps], self.fuse)

    def close(self) -> None:
        for _, kernel in self.steps:
            kernel.close()

    def forward(self, items: list[Payload]) -> Outcome:
        if self._item_wise:
            errors = [self._run_item(item) for item in items]
            return errors if any(e is not None for e in errors) else None
        return self._run_step_wise(items)

    def _run_item(self, item: Payload) -> BaseException | None:
        """One item through every step (all steps are item kernels)."""
        error: BaseException | None = None
        for position, (name, kernel, filter_fn, fallback) in enumerate(self._plan):
            if error is not None:
                if not fallback:
                    return error
                error = None  # (or): try again from the same data
            elif position:
                status = filter_fn(item)
                if status is Status.SKIP:
                    continue
                if status is not Status.RUN:
                    return self._left(status, position, name)
            item.pop("result", None)
            try:
                kernel.process(item)  # type: ignore[attr-defined]
            except Exception as exc:
                error = exc
        return error

    def _left(self, status: Status, position: int, name: str) -> BaseException | None:
        """The error (or ``None``) of an item that leaves the chain at ``position``."""
        if status is Status.NO_RESULT:
            previous = type(self.steps[position - 1][1]).__name__
            return KernelError(f"step {position - 1} ({previous}) left no 'result'")
        if status is Status.ERROR:
            return KernelError(f"filter {name!r} stopped the request at step {position}")
        return None  # Break, SerialSkip, SubGraphSkip: it leaves as it is

    def _run_step_wise(self, items: list[Payload]) -> Outcome:
        errors: list[BaseException | None] = [None] * len(items)
        active = list(range(len(items)))
        for position, (name, kernel, filter_fn, fallback) in enumerate(self._plan):
            runs, active = self._admit(position, name, filter_fn, fallback, items, errors, active)
            if runs:
                self._run_step(kernel, [items[i] for i in runs], runs, errors)
        return errors if any(e is not None for e in errors) else None

    def _admit(
        self,
        position: int,
        name: str,
        filter_fn: FilterFn,
        fallback: bool,
        items: list[Payload],
        errors: list[BaseException | None],
        active: list[int],
    ) -> tuple[list[int], list[int]]:
        """Which active items run this step, and which stay active afterwards."""
        runs: list[int] = []
        still: list[int] = []
        for i in active:
            item = items[i]
            if errors[i] is not None:
                if fallback:  # (or): try again from the same data
                    errors[i] = None
                    item.pop("result", None)
                    runs.append(i)
                    still.append(i)
                continue
            status = filter_fn(item)
            if status is Status.RUN:
                item.pop("result", None)
                runs.append(i)
                still.append(i)
            elif status is Status.SKIP:
                still.append(i)
            else:
                errors[i] = self._left(status, position, name)
        return runs, still

    @staticmethod
    def _run_step(
        kernel: Kernel, batch: list[Payload], where: list[int], errors: list[BaseException | None]
    ) -> None:
        size = kernel.max_batch
        for start in range(0, len(batch), size):
            chunk = batch[start : start + size]
            try:
                outcome = kernel.forward(chunk)
            except Exception as exc:  # fails this chunk's items only
                for offset in range(len(chunk)):
                    errors[where[start + offset]] = exc
                continue
            if outcome is not None:
                for offset, error in enumerate(outcome):
                    if error is not None:
                        errors[where[start + offset]] = error
