"""One CUDA graph per batch-size bucket, per instance: the GPU path of ``TorchModel``.

Replaying a captured graph launches a whole network for the cost of one launch, which is
what lets small batches run fast. Each instance owns its graphs and their static input
and output buffers (the weights are shared by every instance on a device), and captures
them on its own stream. A batch of ``n`` is copied into the smallest bucket ``>= n``;
the rows past ``n`` hold stale inputs, harmless because a network's rows are independent
in eval mode, and are never read back.

Outputs leave the static buffers at once: as float32 copies on the device when the next
node is a GPU node, else as non-blocking copies into pinned host memory. Either way the
instance's completion (event or stream callback) waits for them before results go back.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from torchweir.kernels.models.batching import pinned_batch, stack_into

__all__ = ["ChannelsLastInput", "GraphedModel", "buckets_up_to"]

#: Captures and compiles touch process-wide CUDA and dynamo state: one at a time.
_CAPTURE_LOCK = threading.Lock()


def buckets_up_to(max_batch: int, given: Sequence[int] = (), *, fine: bool = True) -> list[int]:
    """Batch sizes to capture: ``given``, else a ladder up to ``max_batch`` that includes
    ``max_batch`` itself.

    The ``fine`` ladder (``1, 2, 4, 8, 12, 16, 20, ..., 32, 40, ..., 64, 80, ..., 128,
    160, ...``) pads a batch by at most a quarter above 16: a mailbox at high load cuts batches
    of any size, and padding 33 images up to 64 wastes nearly half the GPU's work. Captures
    are cheap; compiles are not, so a compiled model uses powers of two (``fine=False``,
    ``12 -> [1, 2, 4, 8, 12]``).

    Raises:
        ValueError: a bucket outside ``1..max_batch``.
    """
    if given:
        sizes = sorted(set(given))
        if sizes[0] < 1 or sizes[-1] > max_batch:
            raise ValueError(f"buckets must lie in 1..{max_batch} (max), got {sizes}")
        return sizes if sizes[-1] == max_batch else [*sizes, max_batch]
    sizes = []
    size = 1
    while size < max_batch:
        sizes.append(size)
        if not fine or size < 8:
            size *= 2
        else:  # steps of a quarter of the power of two below: 32 -> 40, 64 -> 80
            size += max(4, 1 << (size.bit_length() - 3))
    return [*sizes, max_batch]


class ChannelsLastInput(nn.Module):
    """Feeds the network channels-last activations, the layout tensor cores prefer."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> Any:
        if x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.model(x)


class GraphedModel:
    """Captured replays of ``module`` for this instance's stream and device.

    Args:
        module: the prepared (normalising, cast, device-resident) module.
        device: this instance's GPU.
        buckets: the batch sizes to capture.
        keep_on_device: return outputs on the GPU rather than the host.
    """

    def __init__(
        self,
        module: nn.Module,
        device: torch.device,
        buckets: Sequence[int],
        keep_on_device: bool,
    ) -> None:
        self.module = module
        self.device = device
        self.buckets = sorted(buckets)
        self.keep_on_device = keep_on_device
        self._graphs: dict[tuple[int, tuple[int, ...], torch.dtype], _Captured] = {}
        self._pool = torch.cuda.graph_pool_handle()

    def warm_up(self, item_shape: Sequence[int], dtype: torch.dtype = torch.uint8) -> None:
        """Capture every bucket for items of ``item_shape`` now, largest first, so the
        smaller graphs reuse the largest one's memory pool."""
        for size in reversed(self.buckets):
            self._captured(size, tuple(item_shape), dtype)

    def stage(self, samples: list[torch.Tensor]) -> torch.Tensor:
        """Concatenate same-shape ``1 x ...`` samples straight into the static input of
        their bucket when they are on this GPU already (one copy, not two); host samples
        into pinned memory, which :meth:`__call__` copies in without blocking (torch's
        pinned-memory cache keeps the block until that copy is done). Host and GPU
        samples together (a node that spilled to a CPU pool) go straight into the static
        input too (:func:`stack_into`)."""
        first = samples[0]
        on_host = [s.device.type == "cpu" for s in samples]
        if all(on_host):
            return pinned_batch(samples)
        gpus = {s.device for s, host in zip(samples, on_host, strict=True) if not host}
        if gpus != {self.device}:  # another GPU's: gathered here, copied in by __call__
            return torch.cat([s.to(self.device) for s in samples])
        captured = self._captured(self._bucket(len(samples)), tuple(first.shape[1:]), first.dtype)
        if any(on_host):  # fed in part by a spill pool on the host
            return stack_into(samples, captured.inputs[: len(samples)])
        return torch.cat(samples, out=captured.inputs[: len(samples)])

    def __call__(self, batch: torch.Tensor) -> Any:
        n = batch.shape[0]
        captured = self._captured(self._bucket(n), tuple(batch.shape[1:]), batch.dtype)
        if batch.data_ptr() != captured.inputs.data_ptr():  # not staged in place
            captured.inputs[:n].copy_(batch, non_blocking=True)
        captured.graph.replay()
        return _take(captured.outputs, n, self.keep_on_device)

    def _bucket(self, n: int) -> int:
        size = next((b for b in self.buckets if b >= n), None)
        if size is None:
            raise ValueError(f"a batch of {n} exceeds the largest bucket {self.buckets[-1]}")
        return size

    def _captured(self, size: int, item_shape: tuple[int, ...], dtype: torch.dtype) -> _Captured:
        key = (size, item_shape, dtype)
        found = self._graphs.get(key)
        if found is None:
            with _CAPTURE_LOCK:
                found = self._graphs[key] = _capture(
                    self.module, size, item_shape, dtype, self.device, self._pool
                )
        return found


class _Captured:
    __slots__ = ("graph", "inputs", "outputs")

    def __init__(self, graph: torch.cuda.CUDAGraph, inputs: torch.Tensor, outputs: Any) -> None:
        self.graph = graph
        self.inputs = inputs
        self.outputs = outputs


def _capture(
    module: nn.Module,
    size: int,
    item_shape: tuple[int, ...],
    dtype: torch.dtype,
    device: torch.device,
    pool: Any,
) -> _Captured:
    stream = torch.cuda.current_stream(device)
    if dtype.is_floating_point:
        inputs = torch.rand((size, *item_shape), device=device).to(dtype)
    else:
        inputs = torch.randint(0, 256, (size, *item_shape), device=device).to(dtype)
    with torch.inference_mode():
        for _ in range(3):  # cuDNN autotuning, lazy inits and compiles happen here
            module(inputs)
        stream.synchronize()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=pool, stream=stream, capture_error_mode="thread_local"):
            outputs = module(inputs)
    stream.synchronize()
    return _Captured(graph, inputs, outputs)


def _take(output: Any, n: int, keep_on_device: bool) -> Any:
    """The first ``n`` rows of the static outputs, copied out (the next replay reuses them)."""
    if isinstance(output, torch.Tensor):
        rows = output[:n]
        if rows.is_floating_point():
            rows = rows.float()
        if keep_on_device:
            return rows.clone() if rows.data_ptr() == output.data_ptr() else rows
        host = torch.empty(rows.shape, dtype=rows.dtype, pin_memory=True)
        return host.copy_(rows, non_blocking=True)
    if isinstance(output, (tuple, list)):
        values = [_take(o, n, keep_on_device) for o in output]
        return values if isinstance(output, list) else tuple(values)
    if isinstance(output, dict):
        return {k: _take(v, n, keep_on_device) for k, v in output.items()}
    return output
