"""From request dicts to model batches and back, shared by the model kernels.

One bad item must fail only its own request (DESIGN.md, "Nothing lost"). So each item is
checked on its own first; the good ones are grouped by shape (items of one shape can be
concatenated), each group runs in chunks of at most ``max_batch``, and a chunk that fails
fails only its own items.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

from torchweir.errors import InputError, KernelError
from torchweir.kernels.base import Outcome, Payload
from torchweir.kernels.models.config import ModelConfig, format_shape

__all__ = [
    "as_sample",
    "gather_rows",
    "pinned_batch",
    "run_batched",
    "split",
    "stack_into",
    "to_output",
    "upload_batch",
]

#: Runs one concatenated batch and returns its host outputs (tensors, or nests of them).
Runner = Callable[[torch.Tensor], Any]
#: Concatenates one chunk's samples into a batch (by default ``torch.cat``).
Concat = Callable[[list[torch.Tensor]], torch.Tensor]


def as_sample(data: object, config: ModelConfig) -> torch.Tensor:
    """One item's ``data`` as a tensor with a leading batch dimension of 1.

    With a known input shape, an item may be ``1x<shape>`` or ``<shape>``; otherwise it
    must be one image, ``1xCxHxW`` or ``CxHxW``.

    Raises:
        InputError: not a tensor or numpy array, or a shape the model does not take.
    """
    if isinstance(data, np.ndarray):
        # torch shares memory only with writable arrays of positive strides (not views
        # such as cv2's ``img[..., ::-1]``); copy the others
        shareable = data.flags.writeable and all(stride >= 0 for stride in data.strides)
        try:
            tensor = torch.from_numpy(data if shareable else data.copy())
        except TypeError:
            raise InputError(f"numpy arrays of dtype {data.dtype} are not supported") from None
    elif isinstance(data, torch.Tensor):
        tensor = data
    else:
        raise InputError(f"expected a tensor or numpy array, got {type(data).__name__}")
    shape = config.shape
    dims = tuple(tensor.shape)
    if shape is not None:
        batched = len(dims) == shape.rank + 1 and dims[0] == 1
        if not shape.accepts(dims[1:] if batched else dims):
            raise InputError(
                f"input of shape {format_shape(dims)} does not fit the model's input "
                f"{shape} (one item: {shape} or 1x{shape})"
            )
    else:
        batched = len(dims) == 4 and dims[0] == 1
        if not (batched or len(dims) == 3):
            raise InputError(
                f"expected one image of shape 1xCxHxW or CxHxW, got {format_shape(dims)}"
            )
    if not batched:
        tensor = tensor.unsqueeze(0)
    channels = config.normalization.channels if config.normalization else None
    if channels is not None and tensor.shape[1] != channels:
        raise InputError(
            f"input of shape {format_shape(dims)} has {tensor.shape[1]} channels "
            f"but mean/std give {channels}"
        )
    return tensor


def gather_rows(samples: list[torch.Tensor], out: torch.Tensor) -> torch.Tensor:
    """Copy host ``1 x ...`` samples into the rows of host tensor ``out``, on this thread.

    ``torch.cat`` splits a host copy over torch's whole OpenMP pool. With a model instance
    per thread each doing so at once, the pools oversubscribed the cores: on an H200 host
    the copy into pinned memory took a third of each batch of host-fed ResNet-50, while
    32 OpenMP threads spun. A memcpy per row (numpy, which lets go of the GIL) needs one
    core. dtypes numpy lacks (bfloat16) go through ``torch.cat``.
    """
    try:
        rows = out.numpy()
    except TypeError:
        return torch.cat(samples, out=out)
    for k, sample in enumerate(samples):
        rows[k : k + 1] = sample.detach().numpy()
    return out


def pinned_batch(samples: list[torch.Tensor]) -> torch.Tensor:
    """Same-shape, same-dtype host ``1 x ...`` samples in one pinned batch, which a GPU
    instance uploads without blocking (torch's pinned-memory cache keeps the block until
    that copy is done). From pageable memory a "non-blocking" upload blocks the thread
    and goes through a staging buffer."""
    first = samples[0]
    pinned = torch.empty((len(samples), *first.shape[1:]), dtype=first.dtype, pin_memory=True)
    return gather_rows(samples, pinned)


def stack_into(samples: list[torch.Tensor], out: torch.Tensor) -> torch.Tensor:
    """Copy same-shape ``1 x ...`` samples, on the host or on ``out``'s GPU, into the rows
    of ``out`` in order, without blocking: each run of device samples in one
    concatenation, each run of host samples through pinned memory.

    A node with a spill pool (a GPU decoder spilling to CPU decoders) hands its child
    such mixed batches; stacking them in one batch keeps them one model call.
    """
    start = 0
    for run in _device_runs(samples):
        rows = out[start : start + len(run)]
        if run[0].device.type == "cpu":
            rows.copy_(pinned_batch(run), non_blocking=True)
        elif len(run) == 1:
            rows.copy_(run[0], non_blocking=True)
        else:
            torch.cat(run, out=rows)
        start += len(run)
    return out


def _device_runs(samples: list[torch.Tensor]) -> list[list[torch.Tensor]]:
    runs: list[list[torch.Tensor]] = []
    for sample in samples:
        if runs and runs[-1][0].device == sample.device:
            runs[-1].append(sample)
        else:
            runs.append([sample])
    return runs


def upload_batch(samples: list[torch.Tensor]) -> torch.Tensor:
    """The batch a GPU instance uploads: host samples of one dtype pinned
    (:func:`pinned_batch`); host and GPU samples together stacked on the GPU
    (:func:`stack_into`); anything else concatenated where it lies."""
    first = samples[0]
    on_host = [s.device.type == "cpu" for s in samples]
    if not all(s.dtype == first.dtype for s in samples):
        return torch.cat(samples)
    if all(on_host):
        return pinned_batch(samples)
    devices = {s.device for s in samples if s.device.type != "cpu"}
    if any(on_host) and len(devices) == 1:
        (device,) = devices
        out = torch.empty((len(samples), *first.shape[1:]), dtype=first.dtype, device=device)
        return stack_into(samples, out)
    return torch.cat(samples)


def run_batched(
    items: list[Payload], run: Runner, config: ModelConfig, concat: Concat | None = None
) -> Outcome:
    """Run every good item through ``run``, set each ``result``; return per-item errors.

    ``concat`` lets a runner build the batch where it wants it (a CUDA graph's static
    input), saving a copy. It takes host and GPU samples in one list (those of a GPU
    first), so that a batch that a spill pool fed in part stays one model call; without
    it, samples are grouped by device too.
    """
    errors: list[BaseException | None] = [None] * len(items)
    groups: dict[tuple[Any, ...], list[tuple[int, torch.Tensor]]] = {}
    for i, item in enumerate(items):
        try:
            sample = as_sample(item.get("data"), config)
        except InputError as exc:
            errors[i] = exc
            continue
        key: tuple[Any, ...] = (tuple(sample.shape), sample.dtype)
        if concat is None:
            key += (sample.device,)
        groups.setdefault(key, []).append((i, sample))
    for members in groups.values():
        members.sort(key=lambda member: member[1].device.type == "cpu")  # stable
        for start in range(0, len(members), config.max_batch):
            chunk = members[start : start + config.max_batch]
            try:
                samples = [x for _, x in chunk]
                if concat is not None:
                    batch = concat(samples)
                else:
                    batch = samples[0] if len(samples) == 1 else torch.cat(samples)
                results = split(run(batch), len(chunk))
            except Exception as exc:  # fails this chunk's items only
                for i, _ in chunk:
                    errors[i] = exc
                continue
            for (i, _), result in zip(chunk, results, strict=True):
                items[i]["result"] = result
    return None if all(error is None for error in errors) else errors


def to_output(output: Any, device: torch.device | None = None) -> Any:
    """Model outputs as float32 (integer outputs keep their dtype) on ``device``, by
    default the host."""
    if isinstance(output, torch.Tensor):
        target = device if device is not None else torch.device("cpu")
        if output.is_floating_point():
            return output.to(target, torch.float32)
        return output.to(target)
    if isinstance(output, (tuple, list)):
        return _rebuild(output, [to_output(o, device) for o in output])
    if isinstance(output, Mapping):
        return {key: to_output(value, device) for key, value in output.items()}
    return output


def split(output: Any, n: int) -> list[Any]:
    """Split a batch's output into ``n`` per-item outputs, each keeping a batch dim of 1.

    Tensors split along dimension 0 (views, no copies); tuples, lists and dicts split
    element by element and keep their type, as torchpipe's ``item[i].unsqueeze(0)`` does.

    Raises:
        KernelError: an output has no leading batch dimension of ``n``, or is not a tensor
            or a nest of them.
    """
    if isinstance(output, torch.Tensor):
        if output.dim() == 0 or output.shape[0] != n:
            raise KernelError(
                f"model output of shape {format_shape(tuple(output.shape))} has no "
                f"leading batch dimension of {n}"
            )
        return list(torch.split(output, 1))
    if isinstance(output, (tuple, list)):
        columns = [split(o, n) for o in output]
        return [_rebuild(output, [column[i] for column in columns]) for i in range(n)]
    if isinstance(output, Mapping):
        keys = list(output)
        columns = [split(output[key], n) for key in keys]
        return [dict(zip(keys, [column[i] for column in columns], strict=True)) for i in range(n)]
    raise KernelError(
        f"model returned {type(output).__name__}; expected a tensor, or tuples, lists or "
        "dicts of tensors"
    )


def _rebuild(like: tuple[Any, ...] | list[Any], values: list[Any]) -> Any:
    if isinstance(like, list):
        return values
    if hasattr(like, "_fields"):  # a namedtuple
        return type(like)(*values)
    return tuple(values)
