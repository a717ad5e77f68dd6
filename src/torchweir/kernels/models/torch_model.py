"""``TorchModel``: a PyTorch module as a batched kernel.

The module is an ``nn.Module``, a TorchScript file (``torch.jit.save``) or a
``torch.export`` archive (``.pt2``). torch is imported when an instance is set up, not
when this module is, so that registering the backend name keeps ``import torchweir`` light.
"""

from __future__ import annotations

import contextlib
import copy
import os
import sys
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from torchweir.errors import ConfigError
from torchweir.kernels.base import InstanceContext, Kernel, Outcome, Payload
from torchweir.kernels.models.base import Floats, ModelKernel, Shape, model_file
from torchweir.kernels.models.config import check_device, check_precision
from torchweir.kernels.registry import registered

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["TorchModel", "load_module"]


@registered("TorchModel")
class TorchModel(ModelKernel):
    """Runs a PyTorch model on a batch of tensors, one concatenated forward per batch.

    Each item's ``data`` is a tensor or numpy array, ``1xCxHxW`` or ``CxHxW`` (any shape
    with ``input_shape``); its ``result`` is the model's output for it, a float32 CPU
    tensor with a leading batch dimension of 1 (tuples, lists and dicts of outputs are split
    element by element). Results are inference tensors: ``clone()`` one before editing it
    in place.

    On the CPU every instance shares one loaded module (inference is thread-safe), loaded
    once by the first instance that starts.

    Args:
        model: an ``nn.Module`` (put in eval mode; copied before a dtype or device change),
            or the path of a TorchScript file or a ``torch.export`` ``.pt2`` archive.
        precision: ``fp32``, ``fp16`` or ``bf16``: the dtype of the weights and inputs.
        mean: per-channel means on the 0-255 scale (``"123.675, 116.28, 103.53"``).
        std: per-channel standard deviations on the 0-255 scale.
        device: ``cpu`` or ``cuda[:N]``, used unless the runtime places the instance.
        max_batch: the largest batch run at once; larger batches run in chunks.
        input_shape: the per-item shape, e.g. ``"3x224x224"``.
        min_input_shape: with ``input_shape``, the smallest per-item shape (dynamic H/W).
        cuda_graphs: on a GPU, replay one captured CUDA graph per batch-size bucket per
            instance (captured at start when ``input_shape`` is known, else on first use).
        buckets: the batch sizes to capture, ``"1,8,32"``; by default a ladder that pads
            a batch by at most a quarter (powers of two when compiled: each size is a
            compile), see :func:`.cuda_graphs.buckets_up_to`.
        channels_last: on a GPU, run convolutions on channels-last activations.
        compile: a ``torch.compile`` mode (``"max-autotune-no-cudagraphs"``, ``"default"``)
            compiled under our own CUDA graphs; empty for eager.
        compile_cache: where compiled artifacts are kept so that a restart skips the
            compile (default ``~/.cache/torchweir/compile``); keyed by model, GPU, torch
            version, mode, precision, buckets and input shape.
        compile_dynamic: compile once for every batch size (the batch dimension is
            symbolic) instead of once per bucket; the buckets are then the fine ladder.

    Raises:
        ConfigError: a missing model file, or a bad precision, device, shape, mean or std.
        TypeError: ``model`` is neither an ``nn.Module`` nor a path.
    """

    def __init__(
        self,
        model: nn.Module | str | os.PathLike[str],
        *,
        precision: str = "fp32",
        mean: Floats = None,
        std: Floats = None,
        device: str = "cpu",
        max_batch: int = 32,
        input_shape: Shape = "",
        min_input_shape: Shape = "",
        cuda_graphs: bool = True,
        buckets: str | Sequence[int] = "",
        channels_last: bool = True,
        compile: str = "",
        compile_cache: str = "",
        compile_dynamic: bool = False,
    ) -> None:
        super().__init__(
            mean=mean,
            std=std,
            max_batch=max_batch,
            input_shape=input_shape,
            min_input_shape=min_input_shape,
        )
        self.model: nn.Module | Path = (
            model_file(model) if isinstance(model, (str, os.PathLike)) else _module(model)
        )
        self.precision = check_precision(precision)
        self.device = check_device(device)
        self.cuda_graphs = cuda_graphs
        self.buckets = parse_buckets(buckets, self.max_batch)
        self.channels_last = channels_last
        self.compile_mode = compile
        self.compile_cache = compile_cache
        self.compile_dynamic = compile_dynamic
        if compile:  # on the building thread: see DecodeTensor.__init__
            import torch._dynamo
            import torch._inductor  # noqa: F401
        self._modules: dict[str, nn.Module] = {}

    def __repr__(self) -> str:
        source = self.model if isinstance(self.model, Path) else type(self.model).__name__
        return f"<TorchModel {source} {self.precision} max={self.max_batch}>"

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> TorchModel:
        """Build from a node's keys: ``model``, ``precision``, ``mean``, ``std``,
        ``max``/``min`` (a batch size or a shape such as ``"4x3x224x224"``), ``device`` or
        ``device_id``, ``input_shape``; other keys are ignored, as torchpipe does."""
        kwargs = cls.common_params(params, "TorchModel")
        for key in ("precision", "buckets", "compile", "compile_cache"):
            if key in params:
                kwargs[key] = str(params[key])
        for key in ("cuda_graphs", "channels_last", "compile_dynamic"):
            if key in params:
                kwargs[key] = _flag(key, params[key])
        kwargs["device"] = _device_param(params)
        return cls(kwargs.pop("model"), **kwargs)

    def setup(self, ctx: InstanceContext) -> Kernel:
        """Load the module for this instance's device (once per device) in this thread."""
        device = self._device(ctx)
        with self._lock:
            module = self._modules.get(str(device))
            if module is None:
                module = self._modules[str(device)] = self._prepare(device)
        if device.type == "cuda" and self.cuda_graphs:
            return self._graphed(module, device, ctx)
        return _TorchInstance(module, device, ctx.keep_on_device, self)

    def _graphed(self, module: nn.Module, device: torch.device, ctx: InstanceContext) -> Kernel:
        from torchweir.kernels.models.cuda_graphs import GraphedModel

        graphs = GraphedModel(module, device, buckets_for(self), ctx.keep_on_device)
        shape = self.config.shape
        if shape is not None and shape.low == shape.high:  # a fixed shape: capture now
            graphs.warm_up(shape.low)
            if self.compile_mode:
                from torchweir.kernels.models.compile_cache import save_compiled

                save_compiled(self._compile_key(device), self.compile_cache)
        return _GraphInstance(graphs, device, self)

    def _device(self, ctx: InstanceContext) -> torch.device:
        """Where an instance runs: the runtime's placement (``ctx.device``) wins over the
        kernel's own ``device``. The GPU path (streams, CUDA graphs) hangs off this."""
        import torch

        name = ctx.device if ctx.device != "cpu" else self.device
        if name.startswith("cuda"):
            if not torch.cuda.is_available():
                raise ConfigError(f"device {name!r} needs CUDA, which is not available")
            if name == "cuda":
                name = f"cuda:{torch.cuda.current_device()}"
        return torch.device(name)

    def _prepare(self, device: torch.device) -> nn.Module:
        import torch

        from torchweir.kernels.models.cuda_graphs import ChannelsLastInput
        from torchweir.kernels.models.normalize import DTYPES, Normalize

        dtype = DTYPES[self.precision]
        if isinstance(self.model, Path):
            module = load_module(self.model)
        elif dtype != torch.float32 or device.type != "cpu":
            module = copy.deepcopy(self.model)  # .to() works in place: keep the caller's
        else:
            module = self.model
        with contextlib.suppress(NotImplementedError):  # torch.export modules refuse;
            module.eval()  # they were traced in eval mode already
        module.to(device=device, dtype=dtype)
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed shapes: pick the fastest kernels
            if self.channels_last:
                channels_last = module.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
                module = ChannelsLastInput(channels_last)
        prepared: nn.Module = Normalize(module, self.config.normalization, dtype, device)
        if self.compile_mode and device.type == "cuda":
            from torchweir.kernels.models.compile_cache import load_compiled

            load_compiled(self._compile_key(device), self.compile_cache)
            compiled = torch.compile(prepared, mode=self.compile_mode, dynamic=False)
            if self.compile_dynamic:
                return cast("nn.Module", DynamicBatch(compiled))  # called like one
            prepared = compiled  # type: ignore[assignment]
        return prepared

    def _compile_key(self, device: torch.device) -> str:
        """What compiled artifacts are valid for."""
        from torchweir.kernels.models.compile_cache import model_digest

        shape = self.config.shape
        return "|".join(
            [
                model_digest(self.model),
                torch_gpu_name(device),
                self.compile_mode,
                self.precision,
                "any batch" if self.compile_dynamic else ",".join(map(str, buckets_for(self))),
                "x".join(map(str, shape.low)) if shape is not None else "any",
                "cl" if self.channels_last else "nchw",
                "dynamic" if self.compile_dynamic else "static",
            ]
        )


class _TorchInstance(Kernel):
    """One instance of a :class:`TorchModel`: the prepared module on its device.

    Outputs go back to the host unless every child of the node runs on a GPU too
    (``keep_on_device``), where a copy to the host and back would be wasted.
    """

    def __init__(
        self, module: nn.Module, device: torch.device, keep_on_device: bool, owner: TorchModel
    ) -> None:
        self.module = module
        self.torch_device = device
        self.device = str(device)
        self.output_device = device if keep_on_device else None
        self.config = owner.config
        self.max_batch = owner.max_batch

    def forward(self, items: list[Payload]) -> Outcome:
        from torchweir.kernels.models.batching import run_batched, upload_batch

        concat = upload_batch if self.torch_device.type == "cuda" else None
        return run_batched(items, self._run, self.config, concat=concat)

    def _run(self, batch: torch.Tensor) -> Any:
        import torch

        from torchweir.kernels.models.batching import to_output

        with torch.inference_mode():
            output = self.module(batch.to(self.torch_device, non_blocking=True))
            return to_output(output, self.output_device)


class _GraphInstance(Kernel):
    """One GPU instance replaying its own CUDA graphs (see :mod:`.cuda_graphs`)."""

    def __init__(self, graphs: Any, device: torch.device, owner: TorchModel) -> None:
        self.graphs = graphs
        self.device = str(device)
        self.config = owner.config
        self.max_batch = owner.max_batch

    def forward(self, items: list[Payload]) -> Outcome:
        import torch

        from torchweir.kernels.models.batching import run_batched

        def run(batch: torch.Tensor) -> Any:
            with torch.inference_mode():
                return self.graphs(batch)

        return run_batched(items, run, self.config, concat=self.graphs.stage)


class DynamicBatch:
    """Calls a compiled module with its input's batch dimension marked symbolic, so
    that one compile serves every bucket (sizes 0 and 1 are always specialised)."""

    def __init__(self, compiled: Any) -> None:
        self.compiled = compiled

    def __call__(self, x: Any) -> Any:
        import torch._dynamo

        if x.shape[0] > 1:
            torch._dynamo.mark_dynamic(x, 0)
        return self.compiled(x)


def parse_buckets(value: str | Sequence[int], max_batch: int) -> tuple[int, ...]:
    """``"1,8,32"`` -> ``(1, 8, 32)``; empty -> ``()`` (powers of two).

    Raises:
        ConfigError: not positive integers within ``max``.
    """
    parts = [p for p in value.split(",") if p.strip()] if isinstance(value, str) else value
    try:
        sizes = tuple(int(p) for p in parts)
    except (TypeError, ValueError):
        raise ConfigError(
            f"expected batch sizes like '1,8,32', got {value!r}", key="buckets"
        ) from None
    if any(size < 1 or size > max_batch for size in sizes):
        raise ConfigError(f"buckets must lie in 1..{max_batch} (max), got {value!r}", key="buckets")
    return sizes


def buckets_for(model: TorchModel) -> list[int]:
    """The batch sizes a model's instances capture (and, compiled, compile)."""
    from torchweir.kernels.models.cuda_graphs import buckets_up_to

    if model.compile_mode and model.compile_dynamic and not model.buckets:
        # batch 1 is always compiled on its own (specialised): pad it to 2 instead
        return [b for b in buckets_up_to(model.max_batch) if b > 1 or model.max_batch == 1]
    return buckets_up_to(model.max_batch, model.buckets, fine=not model.compile_mode)


def torch_gpu_name(device: torch.device) -> str:
    import torch

    props = torch.cuda.get_device_properties(device)
    return f"{props.name} sm_{props.major}{props.minor} torch {torch.__version__}"


def _flag(key: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"expected true or false, got {value!r}", key=key)


def load_module(path: Path) -> nn.Module:
    """Load a TorchScript file or a ``torch.export`` archive, told apart by their contents.

    Raises:
        ConfigError: the file is ONNX, a pickled object (a state dict), or not a model.
    """
    import torch

    if path.suffix.lower() == ".onnx":
        raise ConfigError(f"{str(path)!r} is an ONNX model: use OnnxModel", key="model")
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError):
        names = []
    if any(name.endswith("/archive_format") for name in names):
        return torch.export.load(path).module()
    if any(name.endswith("/constants.pkl") for name in names):
        module: nn.Module = torch.jit.load(path, map_location="cpu")  # type: ignore[no-untyped-call]
        return module
    what = "a pickled object (a state dict?)" if names else "not a zip archive"
    raise ConfigError(
        f"{str(path)!r} is {what}, not a TorchScript file or a torch.export .pt2 archive; "
        "for weights, build the nn.Module and pass it",
        key="model",
    )


def _module(model: object) -> nn.Module:
    """``model`` if it is an ``nn.Module``, checked without importing torch: if torch is
    not imported yet, ``model`` cannot be one.

    Raises:
        TypeError: it is not.
    """
    torch = sys.modules.get("torch")
    if torch is None or not isinstance(model, torch.nn.Module):
        raise TypeError(
            f"model must be an nn.Module or the path of a model file, got {type(model).__name__}"
        )
    return cast("nn.Module", model)


def _device_param(params: Mapping[str, Any]) -> str:
    """``device`` as given, else torchpipe's ``device_id`` (``-1`` is the CPU)."""
    if params.get("device"):
        return str(params["device"])
    device_id = params.get("device_id", -1)
    try:
        index = int(device_id)
    except (TypeError, ValueError):
        raise ConfigError(f"expected an integer, got {device_id!r}", key="device_id") from None
    return "cpu" if index < 0 else f"cuda:{index}"
