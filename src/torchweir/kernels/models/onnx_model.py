"""``OnnxModel``: an ONNX model run by onnxruntime, as a batched kernel.

onnxruntime is imported when an instance is set up, so that it stays an optional
dependency: without it, only nodes that use ``OnnxModel`` fail, with the command to fix it.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torchweir.errors import ConfigError
from torchweir.kernels.base import InstanceContext, Kernel, Outcome, Payload
from torchweir.kernels.models.base import Floats, ModelKernel, Shape, model_file
from torchweir.kernels.models.config import InputShape, ModelConfig
from torchweir.kernels.registry import registered

if TYPE_CHECKING:
    import torch

__all__ = ["OnnxModel"]

_PROVIDERS = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}
_GPU_PROVIDERS = frozenset({"CUDAExecutionProvider", "TensorrtExecutionProvider"})
#: onnxruntime's input types that numpy (and so onnxruntime's Python API) can feed.
_INPUT_TYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(uint8)": "uint8",
    "tensor(int8)": "int8",
    "tensor(int32)": "int32",
    "tensor(int64)": "int64",
    "tensor(bool)": "bool",
}


@registered("OnnxModel")
class OnnxModel(ModelKernel):
    """Runs an ONNX model with onnxruntime, one session per instance.

    Inputs, outputs and errors follow :class:`~torchweir.kernels.models.TorchModel`:
    ``1xCxHxW`` or ``CxHxW`` items (any shape with ``input_shape``), ``mean``/``std`` on the
    0-255 scale, float32 CPU tensors with a leading batch dimension of 1 as results (a list
    of them for a model with several outputs). When the model itself fixes the per-item
    shape or the batch size, items are checked against it and batches are padded to it.

    Each session gets ``cpu_count // instance_num`` intra-op threads, so that the
    instances together use the machine once.

    Args:
        model: path of the ``.onnx`` file.
        mean: per-channel means on the 0-255 scale (``"123.675, 116.28, 103.53"``).
        std: per-channel standard deviations on the 0-255 scale.
        max_batch: the largest batch run at once; larger batches run in chunks.
        input_shape: the per-item shape, e.g. ``"3x224x224"``.
        min_input_shape: with ``input_shape``, the smallest per-item shape (dynamic H/W).
        providers: onnxruntime execution providers in order of preference
            (``"cuda,cpu"`` or full names); by default CUDA when available, then CPU.

    Raises:
        ConfigError: a missing model file, or a bad shape, mean or std.
    """

    def __init__(
        self,
        model: str | os.PathLike[str],
        *,
        mean: Floats = None,
        std: Floats = None,
        max_batch: int = 32,
        input_shape: Shape = "",
        min_input_shape: Shape = "",
        providers: str | Sequence[str] = "",
    ) -> None:
        super().__init__(
            mean=mean,
            std=std,
            max_batch=max_batch,
            input_shape=input_shape,
            min_input_shape=min_input_shape,
        )
        self.model = model_file(model)
        parts = providers.split(",") if isinstance(providers, str) else list(providers)
        self.providers = tuple(
            _PROVIDERS.get(p.strip().lower(), p.strip()) for p in parts if p.strip()
        )

    def __repr__(self) -> str:
        return f"<OnnxModel {self.model} max={self.max_batch}>"

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> OnnxModel:
        """Build from a node's keys: ``model``, ``mean``, ``std``, ``max``/``min`` (a batch
        size or a shape such as ``"4x3x224x224"``), ``input_shape``, ``providers``."""
        kwargs = cls.common_params(params, "OnnxModel")
        if "providers" in params:
            kwargs["providers"] = params["providers"]
        return cls(kwargs.pop("model"), **kwargs)

    def setup(self, ctx: InstanceContext) -> Kernel:
        """Create this instance's onnxruntime session, in its thread.

        Raises:
            ConfigError: onnxruntime is missing, lacks a requested provider, or cannot
                load the model, or the model's input does not fit the settings.
        """
        ort = _onnxruntime()
        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, (os.cpu_count() or 1) // ctx.instance_num)
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors reach the caller as exceptions instead
        providers = self._session_providers(ort, ctx)
        try:
            session = ort.InferenceSession(
                str(self.model), sess_options=options, providers=providers
            )
        except Exception as exc:  # onnxruntime's own types (InvalidProtobuf, Fail, ...)
            raise ConfigError(
                f"onnxruntime cannot load {str(self.model)!r}: {exc}", key="model"
            ) from exc
        return _OnnxInstance(session, self.model, self.config)

    def _session_providers(self, ort: Any, ctx: InstanceContext) -> list[Any]:
        available = list(ort.get_available_providers())
        wanted = self.providers or tuple(
            p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available
        )
        for provider in wanted:
            if provider not in available:
                raise ConfigError(
                    f"onnxruntime has no {provider!r}; available: {', '.join(available)}",
                    key="providers",
                )
        index = int(ctx.device.partition(":")[2] or 0) if ctx.device.startswith("cuda") else 0
        return [(p, {"device_id": index}) if p in _GPU_PROVIDERS else p for p in wanted]


class _OnnxInstance(Kernel):
    """One instance of an :class:`OnnxModel`: its session and the model's input contract."""

    def __init__(self, session: Any, path: Path, config: ModelConfig) -> None:
        import torch

        from torchweir.kernels.models.normalize import constants

        inputs = session.get_inputs()
        if len(inputs) != 1:
            names = ", ".join(i.name for i in inputs)
            raise ConfigError(
                f"OnnxModel runs models with one input; {str(path)!r} has {len(inputs)}: {names}",
                key="model",
            )
        (spec,) = inputs
        dtype_name = _INPUT_TYPES.get(spec.type)
        if dtype_name is None:
            raise ConfigError(f"input type {spec.type} of {str(path)!r} is not supported")
        self.dtype: torch.dtype = getattr(torch, dtype_name)
        if config.normalization is not None and not self.dtype.is_floating_point:
            raise ConfigError(
                f"mean/std need a floating-point model input; {str(path)!r} takes {spec.type}",
                key="mean",
            )
        self.session = session
        self.input_name: str = spec.name
        self.output_names: list[str] = [o.name for o in session.get_outputs()]
        self.fixed_batch, self.config = _fit_model(spec.shape, path, config)
        self.max_batch = self.config.max_batch
        self.mean, self.std = constants(config.normalization, torch.device("cpu"))

    def forward(self, items: list[Payload]) -> Outcome:
        from torchweir.kernels.models.batching import run_batched

        return run_batched(items, self._run, self.config)

    def _run(self, batch: torch.Tensor) -> Any:
        import numpy as np
        import torch

        from torchweir.kernels.models.batching import to_output
        from torchweir.kernels.models.normalize import normalize

        n = len(batch)
        if self.fixed_batch is not None and n < self.fixed_batch:  # pad with the last item
            batch = torch.cat([batch, batch[-1:].expand(self.fixed_batch - n, *batch.shape[1:])])
        x = normalize(batch.cpu(), self.mean, self.std, self.dtype).to(self.dtype)
        feed = {self.input_name: np.ascontiguousarray(x.numpy())}
        outputs = [torch.from_numpy(o)[:n] for o in self.session.run(self.output_names, feed)]
        return to_output(outputs[0] if len(outputs) == 1 else outputs)


def _fit_model(
    dims: Sequence[Any], path: Path, config: ModelConfig
) -> tuple[int | None, ModelConfig]:
    """The model's fixed batch size (if any) and the config refined by its input shape.

    Raises:
        ConfigError: ``input_shape`` has another rank than the model's input.
    """
    fixed = [d if isinstance(d, int) and d > 0 else None for d in dims]
    batch = fixed[0] if fixed else None
    if config.shape is None and fixed:
        model_shape = InputShape(low=tuple(d or 1 for d in fixed[1:]), high=tuple(fixed[1:]))
        config = dataclasses.replace(config, shape=model_shape)
    elif config.shape is not None and config.shape.rank != len(fixed) - 1:
        raise ConfigError(
            f"input_shape {config.shape} has {config.shape.rank} dimensions but "
            f"{str(path)!r} takes items of {len(fixed) - 1}",
            key="input_shape",
        )
    if batch is not None:
        config = dataclasses.replace(config, max_batch=min(config.max_batch, batch))
    return batch, config


def _onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError as exc:
        raise ConfigError(
            "OnnxModel needs onnxruntime: pip install onnxruntime (or onnxruntime-gpu)"
        ) from exc
    return onnxruntime
