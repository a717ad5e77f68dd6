"""``TensorrtTensor``: ONNX -> TensorRT engine, one execution context per instance.

torchpipe's ``TensorrtTensor`` semantics, on the TensorRT 10/11 Python API:

* ``min`` / ``max`` are shapes, ``x`` between dimensions, ``,`` between network inputs and
  ``;`` between instances (the last profile repeats). ``max = "4"`` sets only the batch
  dimension; the others come from the ONNX model. Each instance gets its own optimisation
  profile and execution context, on its own CUDA stream.
* ``model::cache`` names the engine file. Next to it a ``.json`` records the key the
  engine was built for (model hash, GPU, TensorRT version, precision, profiles); a
  mismatch rebuilds it, so a stale engine is never loaded.
* Batches larger than the profile's ``max`` are split.

TensorRT cannot be installed from this project's package index; where ``tensorrt`` is
missing the kernel fails at construction with a :class:`ConfigError` that names the
installable alternatives. The planning functions below are pure and tested everywhere.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from torchweir.errors import ConfigError, InputError
from torchweir.kernels.base import InstanceContext, Kernel, Outcome, Payload
from torchweir.kernels.registry import registered

__all__ = [
    "Profile",
    "TensorrtTensor",
    "engine_key",
    "parse_shapes",
    "plan_profiles",
    "split_batches",
]

Shape = tuple[int, ...]


class Profile(NamedTuple):
    """One optimisation profile: per network input, its min / opt / max shapes."""

    min: tuple[Shape, ...]
    opt: tuple[Shape, ...]
    max: tuple[Shape, ...]

    @property
    def max_batch(self) -> int:
        return self.max[0][0]

    @property
    def min_batch(self) -> int:
        return self.min[0][0]


def parse_shapes(text: str | int) -> list[list[Shape]]:
    """``"1x3x224x224,1x10;4x3x224x224"`` -> per instance, per input, a shape.

    Raises:
        ValueError: an empty part or a non-positive / non-integer dimension.
    """
    profiles = []
    for instance_part in str(text).split(";"):
        inputs = []
        for input_part in instance_part.split(","):
            dims = [d.strip() for d in input_part.strip().split("x")]
            if not all(d.isdigit() and int(d) > 0 for d in dims):
                raise ValueError(f"expected dimensions like 4x3x224x224, got {input_part!r}")
            inputs.append(tuple(int(d) for d in dims))
        profiles.append(inputs)
    return profiles


def plan_profiles(
    min_text: str | int,
    max_text: str | int,
    instance_num: int,
    model_shapes: Sequence[Sequence[int]],
) -> list[Profile]:
    """One profile per instance, completing short shapes from the model's own.

    ``model_shapes`` are the ONNX input shapes, with ``-1`` (or any value < 1) for dynamic
    dimensions. A ``max = "4"`` fills dimensions 1.. from the model; a dynamic one there
    must be given explicitly.

    Raises:
        ConfigError: shapes that do not fit the model, ``min > max``, a missing dimension.
    """
    mins, maxs = parse_shapes(min_text), parse_shapes(max_text)
    profiles = []
    for index in range(instance_num):
        low = mins[min(index, len(mins) - 1)]
        high = maxs[min(index, len(maxs) - 1)]
        if len(high) != len(model_shapes) or len(low) not in (len(model_shapes), 1):
            raise ConfigError(
                f"the model has {len(model_shapes)} input(s); max gives {len(high)}, "
                f"min gives {len(low)}",
                key="max",
            )
        full_min, full_max = [], []
        for k, model_shape in enumerate(model_shapes):
            top = _complete(high[k], model_shape, "max")
            bottom = _complete(low[min(k, len(low) - 1)], model_shape, "min", like=top)
            if any(b > t for b, t in zip(bottom, top, strict=True)):
                raise ConfigError(f"min {bottom} exceeds max {top} for input {k}", key="min")
            full_min.append(bottom)
            full_max.append(top)
        profiles.append(Profile(tuple(full_min), tuple(full_max), tuple(full_max)))
    return profiles


def _complete(given: Shape, model: Sequence[int], key: str, like: Shape | None = None) -> Shape:
    if len(given) == len(model):
        return given
    if len(given) == 1:  # batch only: the rest from the model, or from max for min
        rest = list(like[1:]) if like is not None else list(model[1:])
        if any(d < 1 for d in rest):
            raise ConfigError(
                f"the model's input {list(model)} has dynamic dimensions; give the full "
                f'shape, e.g. {key} = "{given[0]}x{"x".join("N" for _ in rest)}"',
                key=key,
            )
        return (given[0], *rest)
    raise ConfigError(
        f"{key} shape {given} does not match the model's input {list(model)}", key=key
    )


def split_batches(size: int, limit: int) -> list[tuple[int, int]]:
    """``[start, end)`` ranges of at most ``limit`` items covering ``range(size)``."""
    if limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    return [(start, min(start + limit, size)) for start in range(0, size, limit)]


def engine_key(
    model_bytes: bytes, gpu: str, trt_version: str, precision: str, profiles: Sequence[Profile]
) -> str:
    """What an engine is valid for; any change means rebuilding it."""
    facts = {
        "model_sha256": hashlib.sha256(model_bytes).hexdigest(),
        "gpu": gpu,
        "tensorrt": trt_version,
        "precision": precision,
        "profiles": [p._asdict() for p in profiles],
    }
    return json.dumps(facts, sort_keys=True)


def _import_tensorrt() -> Any:
    try:
        import tensorrt
    except ImportError as exc:
        raise ConfigError(
            f"TensorrtTensor needs TensorRT, and `import tensorrt` failed ({exc}). Install "
            "TensorRT 10+ on a CUDA machine (pip install tensorrt), or run the same model "
            'with OnnxModel (onnxruntime: backend = "OnnxModel", model = "x.onnx") or '
            'TorchModel (backend = "TorchModel", model = "x.pt2" or "x.pt")',
            key="backend",
        ) from None
    return tensorrt


@registered("TensorrtTensor")
class TensorrtTensor(Kernel):
    """Run an ONNX model (or a serialized engine) with TensorRT, batched, per instance.

    Args:
        model: ``x.onnx``, or a serialized engine (``.trt`` / ``.engine``).
        cache: where to keep the built engine (torchpipe's ``model::cache``).
        precision: ``fp32``, ``fp16`` or ``best`` (fp16 where TensorRT finds it faster).
        mean, std: per-channel, torchpipe's 0-255 convention; applied on the GPU before the
            engine, on the instance's stream.
        min_shape, max_shape: profile shapes (see :func:`plan_profiles`).
        instance_num: one profile and one execution context per instance.
    """

    device = "cuda"

    def __init__(
        self,
        model: str,
        cache: str = "",
        precision: str = "fp32",
        mean: str = "",
        std: str = "",
        min_shape: str = "1",
        max_shape: str = "1",
        instance_num: int = 1,
    ) -> None:
        self.trt = _import_tensorrt()
        if precision not in ("fp32", "fp16", "best"):
            raise ConfigError(
                f"precision must be fp32, fp16 or best, got {precision!r}", key="precision"
            )
        self.model = Path(model)
        if not self.model.is_file():
            raise ConfigError(f"model file {model!r} does not exist", key="model")
        self.cache = Path(cache) if cache else None
        self.precision = precision
        self.mean = [float(v) for v in mean.split(",")] if mean else []
        self.std = [float(v) for v in std.split(",")] if std else []
        self.min_text, self.max_text = min_shape, max_shape
        self.instance_num = instance_num
        self.max_batch = parse_shapes(max_shape)[0][0][0]
        self._engine: Any = None
        self._lock = threading.Lock()

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> Kernel:
        """torchpipe's keys: ``model``, ``model::cache``, ``min``, ``max``, ``precision``."""
        return cls(
            model=str(params["model"]) if "model" in params else "",
            cache=str(params.get("model::cache", "")),
            precision=str(params.get("precision", "fp32")),
            mean=str(params.get("mean", "")),
            std=str(params.get("std", "")),
            min_shape=str(params.get("min", "1")),
            max_shape=str(params.get("max", "1")),
            instance_num=int(params.get("instance_num", 1)),
        )

    def setup(self, ctx: InstanceContext) -> Kernel:
        engine = self._shared_engine()
        return _TensorrtInstance(self, engine, ctx)

    def forward(self, items: list[Payload]) -> Outcome:
        raise RuntimeError("TensorrtTensor runs through its per-instance copies (setup)")

    def _shared_engine(self) -> Any:
        with self._lock:
            if self._engine is None:
                self._engine = self._load_or_build()
            return self._engine

    def _load_or_build(self) -> Any:
        trt = self.trt
        logger = trt.Logger(trt.Logger.WARNING)
        runtime = trt.Runtime(logger)
        if self.model.suffix in (".trt", ".engine"):
            return runtime.deserialize_cuda_engine(self.model.read_bytes())
        onnx_bytes = self.model.read_bytes()
        builder = trt.Builder(logger)
        network = builder.create_network(0)  # explicit batch is the only mode in TRT 10
        parser = trt.OnnxParser(network, logger)
        if not parser.parse(onnx_bytes):
            problems = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise ConfigError(f"TensorRT cannot parse {self.model}: {problems}", key="model")
        inputs = [network.get_input(i) for i in range(network.num_inputs)]
        profiles = plan_profiles(
            self.min_text, self.max_text, self.instance_num, [tuple(t.shape) for t in inputs]
        )
        key = engine_key(onnx_bytes, _gpu_name(), trt.__version__, self.precision, profiles)
        cached = self._cached_engine(runtime, key)
        if cached is not None:
            return cached
        config = builder.create_builder_config()
        if self.precision in ("fp16", "best"):
            config.set_flag(trt.BuilderFlag.FP16)
        for profile in profiles:
            trt_profile = builder.create_optimization_profile()
            for tensor, low, opt, high in zip(
                inputs, profile.min, profile.opt, profile.max, strict=True
            ):
                trt_profile.set_shape(tensor.name, low, opt, high)
            config.add_optimization_profile(trt_profile)
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise ConfigError(f"TensorRT could not build an engine for {self.model}", key="model")
        data = bytes(serialized)
        if self.cache is not None:
            self.cache.parent.mkdir(parents=True, exist_ok=True)
            self.cache.write_bytes(data)
            self.cache.with_suffix(self.cache.suffix + ".json").write_text(key)
        return runtime.deserialize_cuda_engine(data)

    def _cached_engine(self, runtime: Any, key: str) -> Any:
        if self.cache is None or not self.cache.is_file():
            return None
        sidecar = self.cache.with_suffix(self.cache.suffix + ".json")
        if not sidecar.is_file() or sidecar.read_text() != key:
            return None  # built for another model, GPU, TensorRT or profile: rebuild
        return runtime.deserialize_cuda_engine(self.cache.read_bytes())


class _TensorrtInstance(Kernel):
    """One instance: its execution context, bound to its profile and stream."""

    def __init__(self, parent: TensorrtTensor, engine: Any, ctx: InstanceContext) -> None:
        import torch

        self.parent = parent
        self.engine = engine
        self.ctx = ctx
        self.device = ctx.device
        self.context = engine.create_execution_context()
        self.profile = ctx.index % max(engine.num_optimization_profiles, 1)
        self.context.set_optimization_profile_async(self.profile, ctx.stream.cuda_stream)
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        mode = parent.trt.TensorIOMode.INPUT
        self.inputs = [n for n in names if engine.get_tensor_mode(n) == mode]
        self.outputs = [n for n in names if engine.get_tensor_mode(n) != mode]
        high = engine.get_tensor_profile_shape(self.inputs[0], self.profile)[2]
        self.max_batch = int(high[0])
        self.item_shape = tuple(int(d) for d in high[1:])
        shape = (1, -1, 1, 1)
        self.mean = (
            torch.tensor(parent.mean, device=ctx.device).view(shape) if parent.mean else None
        )
        self.std = torch.tensor(parent.std, device=ctx.device).view(shape) if parent.std else None

    def forward(self, items: list[Payload]) -> Outcome:
        import torch

        errors: list[BaseException | None] = [None] * len(items)
        good = []
        for i, item in enumerate(items):
            data = item["data"]
            if not isinstance(data, torch.Tensor):
                errors[i] = InputError(f"expected a tensor, got {type(data).__name__}")
            elif tuple(data.shape[-len(self.item_shape) :]) != self.item_shape:
                errors[i] = InputError(
                    f"input shape {tuple(data.shape)} does not fit the engine's {self.item_shape}"
                )
            else:
                good.append(i)
        for start, end in split_batches(len(good), self.max_batch):
            chunk = [items[i] for i in good[start:end]]
            for item, result in zip(chunk, self._run(chunk), strict=True):
                item["result"] = result
        return errors if any(e is not None for e in errors) else None

    def _run(self, chunk: list[Payload]) -> list[Any]:
        import torch

        from torchweir.kernels.models.batching import upload_batch

        x = upload_batch([item["data"].reshape(1, *self.item_shape) for item in chunk])
        x = x.to(self.device, non_blocking=True).float()
        if self.mean is not None:
            x = x - self.mean
        if self.std is not None:
            x = x / self.std
        x = x.contiguous()
        name = self.inputs[0]
        self.context.set_input_shape(name, tuple(x.shape))
        self.context.set_tensor_address(name, x.data_ptr())
        outputs = []
        for out_name in self.outputs:
            shape = tuple(self.context.get_tensor_shape(out_name))
            out = torch.empty(shape, dtype=torch.float32, device=self.device)
            self.context.set_tensor_address(out_name, out.data_ptr())
            outputs.append(out)
        if not self.context.execute_async_v3(self.ctx.stream.cuda_stream):
            raise RuntimeError("TensorRT execute_async_v3 failed")
        host = [o if self.ctx.keep_on_device else o.to("cpu", non_blocking=True) for o in outputs]
        if len(host) == 1:
            return [host[0][j : j + 1] for j in range(len(chunk))]
        return [tuple(o[j : j + 1] for o in host) for j in range(len(chunk))]


def _gpu_name() -> str:
    import torch

    props = torch.cuda.get_device_properties(torch.cuda.current_device())
    return f"{props.name} sm_{props.major}{props.minor}"
