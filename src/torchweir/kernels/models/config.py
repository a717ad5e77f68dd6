"""Settings shared by the model kernels, parsed in plain Python.

The model kernels register their TOML names when ``torchweir`` is imported, and that
import must stay light. So everything a constructor checks lives here without torch;
torch (and onnxruntime) are imported only when an instance is set up.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from torchweir.errors import ConfigError

__all__ = [
    "PRECISIONS",
    "InputShape",
    "ModelConfig",
    "Normalization",
    "batch_and_shape",
    "check_device",
    "check_max_batch",
    "check_precision",
    "format_shape",
    "parse_dims",
    "parse_floats",
    "parse_normalization",
    "shape_params",
]

#: The precisions a model may run in; torchpipe's ``int8`` and ``best`` are TensorRT's.
PRECISIONS = ("fp32", "fp16", "bf16")
_DEVICE = re.compile(r"cpu|cuda(:\d+)?")


def format_shape(shape: Sequence[int]) -> str:
    """``(1, 3, 224, 224)`` -> ``"1x3x224x224"``, torchpipe's spelling."""
    return "x".join(str(d) for d in shape) if len(shape) else "()"


def check_precision(value: object) -> str:
    """Raises: ConfigError: ``value`` is not one of :data:`PRECISIONS`."""
    if isinstance(value, str) and value.strip().lower() in PRECISIONS:
        return value.strip().lower()
    raise ConfigError(f"expected one of {', '.join(PRECISIONS)}, got {value!r}", key="precision")


def check_device(value: object) -> str:
    """Raises: ConfigError: ``value`` is not ``"cpu"``, ``"cuda"`` or ``"cuda:N"``."""
    if isinstance(value, str) and _DEVICE.fullmatch(value.strip()):
        return value.strip()
    raise ConfigError(f"expected 'cpu', 'cuda' or 'cuda:N', got {value!r}", key="device")


def parse_floats(key: str, value: object) -> tuple[float, ...] | None:
    """``"123.675, 116.28, 103.53"``, one number, or a sequence -> floats; unset -> ``None``.

    Raises:
        ConfigError: a part is not a finite number (names ``key`` and the value).
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, str):
        parts: list[Any] = [p for p in re.split(r"[,\s]+", value.strip()) if p]
    elif isinstance(value, (int, float)):
        parts = [value]
    elif isinstance(value, Sequence):
        parts = list(value)
    else:
        parts = [value]
    try:
        if any(isinstance(p, bool) for p in parts):
            raise TypeError
        floats = tuple(float(p) for p in parts)
    except (TypeError, ValueError):
        floats = ()
    if not floats or not all(math.isfinite(f) for f in floats):
        raise ConfigError(
            f"expected numbers such as '123.675, 116.28, 103.53', got {value!r}", key=key
        )
    return floats


@dataclass(frozen=True, slots=True)
class Normalization:
    """torchpipe's ``mean``/``std`` on the 0-255 scale, one value per channel (or one)."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    @property
    def channels(self) -> int | None:
        """How many channels an input must have, or ``None`` when one value fits all."""
        return len(self.mean) if len(self.mean) > 1 else None


def parse_normalization(mean: object, std: object) -> Normalization | None:
    """Both unset -> ``None``; one unset -> the identity for it (mean 0, std 1).

    Raises:
        ConfigError: unequal lengths (other than one value for all channels), a zero std.
    """
    means, stds = parse_floats("mean", mean), parse_floats("std", std)
    if means is None and stds is None:
        return None
    means, stds = means or (0.0,), stds or (1.0,)
    if len(means) != len(stds) and 1 not in (len(means), len(stds)):
        raise ConfigError(
            f"mean has {len(means)} values but std has {len(stds)}; give one per channel",
            key="std",
        )
    if 0.0 in stds:
        raise ConfigError(f"std must not be 0 (it divides), got {std!r}", key="std")
    channels = max(len(means), len(stds))
    return Normalization(
        mean=means * channels if len(means) == 1 else means,
        std=stds * channels if len(stds) == 1 else stds,
    )


def parse_dims(key: str, value: object) -> tuple[int, ...]:
    """``"3x224x224"`` or a sequence of ints -> a tuple of positive ints; unset -> ``()``.

    Raises:
        ConfigError: a dimension is not a positive integer.
    """
    if isinstance(value, str):
        parts: Sequence[Any] = value.strip().split("x") if value.strip() else ()
    elif isinstance(value, Sequence):
        parts = value
    elif value is None:
        parts = ()
    else:
        parts = [None]  # rejected below
    if not parts:
        return ()
    try:
        dims = tuple(_positive_int(p) for p in parts)
    except (TypeError, ValueError):
        dims = ()
    if not dims:
        raise ConfigError(f"expected a shape such as '3x224x224', got {value!r}", key=key)
    return dims


def _positive_int(part: object) -> int:
    if isinstance(part, bool) or not isinstance(part, (int, str)):
        raise TypeError(part)
    number = int(part.strip() if isinstance(part, str) else part)
    if number < 1:
        raise ValueError(part)
    return number


def batch_and_shape(key: str, value: object) -> tuple[int | None, tuple[int, ...]]:
    """Read torchpipe's ``max``/``min``: a batch size, or a shape whose first dimension is one.

    ``4`` -> ``(4, ())``; ``"4x3x224x224"`` -> ``(4, (3, 224, 224))``.

    Raises:
        ConfigError: the value is not a batch size or one shape; several inputs (``,``) or
            per-instance profiles (``;``) are TensorRT's and not supported here.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return None, ()
    if isinstance(value, str) and re.search(r"[,;]", value):
        raise ConfigError(
            f"model kernels take one input and one profile, got {value!r}; "
            "write one shape such as '4x3x224x224'",
            key=key,
        )
    dims = parse_dims(key, value if isinstance(value, str) else [value])
    return dims[0], dims[1:]


@dataclass(frozen=True, slots=True)
class InputShape:
    """The per-item input shape a model accepts (no batch dimension).

    ``low[i] <= shape[i] <= high[i]`` for each dimension; ``high[i]`` is ``None`` where the
    model leaves that dimension free (a dynamic ONNX axis).
    """

    low: tuple[int, ...]
    high: tuple[int | None, ...]

    @classmethod
    def parse(cls, high: object, low: object = "") -> InputShape | None:
        """From ``input_shape`` (and ``min_input_shape``, for dynamic H/W); unset -> ``None``.

        Raises:
            ConfigError: not shapes, ranks differ, or a ``low`` dimension exceeds ``high``.
        """
        highs = parse_dims("input_shape", high)
        lows = parse_dims("min_input_shape", low) or highs
        if not highs:
            if lows:
                raise ConfigError("min_input_shape needs input_shape", key="min_input_shape")
            return None
        if len(lows) != len(highs) or any(lo > hi for lo, hi in zip(lows, highs, strict=True)):
            raise ConfigError(
                f"expected min_input_shape within input_shape {format_shape(highs)}, "
                f"got {format_shape(lows)}",
                key="min_input_shape",
            )
        return cls(low=lows, high=highs)

    @property
    def rank(self) -> int:
        return len(self.low)

    def accepts(self, shape: Sequence[int]) -> bool:
        return len(shape) == self.rank and all(
            lo <= d and (hi is None or d <= hi)
            for d, lo, hi in zip(shape, self.low, self.high, strict=True)
        )

    def __str__(self) -> str:
        def dim(lo: int, hi: int | None) -> str:
            if hi == lo:
                return str(lo)
            return "?" if hi is None and lo <= 1 else f"({lo}..{'' if hi is None else hi})"

        return "x".join(dim(lo, hi) for lo, hi in zip(self.low, self.high, strict=True))


@dataclass(frozen=True, slots=True)
class ModelConfig:
    """What the batching helpers need to know about a model's input."""

    max_batch: int
    shape: InputShape | None = None
    normalization: Normalization | None = None


def check_max_batch(value: object) -> int:
    """Raises: ConfigError: not an integer >= 1."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    raise ConfigError(f"expected an integer >= 1, got {value!r}", key="max")


def shape_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """The constructor arguments a node's ``max``/``min``/``input_shape`` keys stand for.

    ``max = "4x3x224x224"`` is a batch limit of 4 and an input shape of ``3x224x224``;
    ``min = "1x3x112x112"`` lets H and W vary down to 112 (torchpipe's profile range).

    Raises:
        ConfigError: a bad shape, or ``max`` disagreeing with an explicit ``input_shape``.
    """
    max_batch, high = batch_and_shape("max", params.get("max"))
    _, low = batch_and_shape("min", params.get("min"))
    low = parse_dims("min_input_shape", params.get("min_input_shape")) or low
    explicit = parse_dims("input_shape", params.get("input_shape"))
    if explicit and high and explicit != high:
        raise ConfigError(
            f"max gives input shape {format_shape(high)} but input_shape is "
            f"{format_shape(explicit)}",
            key="input_shape",
        )
    high = explicit or high
    kwargs: dict[str, Any] = {"input_shape": high}
    if max_batch is not None:
        kwargs["max_batch"] = max_batch
    if low and high and low != high:
        kwargs["min_input_shape"] = low
    return kwargs
