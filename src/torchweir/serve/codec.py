"""The wire encoding of requests and results, in JSON or msgpack (with msgspec; never pickle).

Plain values (``None``, bools, numbers, strings, lists, dicts with string keys) travel as
themselves. Three kinds of value need a convention, and each one is a small map that the
decoder recognises by its exact set of keys:

* **Arrays** (``numpy.ndarray``, ``torch.Tensor``, 0-d included)::

      {"dtype": "float32", "shape": [1, 1000], "data": ...}

  ``dtype`` is a numpy dtype name: ``bool``, ``int8``...``int64``, ``uint8``...``uint64``,
  ``float16``, ``float32``, ``float64``, ``complex64``, ``complex128``. ``data`` holds the
  elements in row-major (C) order, *flat*:

  - in **msgpack**, as one ``bin`` of raw little-endian bytes (``prod(shape) * itemsize``
    long): no per-element cost, and a client reads it with ``numpy.frombuffer`` or a JS
    typed array;
  - in **JSON**, as a flat list of numbers. Non-finite floats are the strings ``"NaN"``,
    ``"Infinity"`` and ``"-Infinity"`` (as in protobuf's JSON mapping), so they round-trip;
    complex arrays have no JSON form (ask for msgpack).

  Tensors of dtypes numpy lacks (``bfloat16``, ``float8``...) are widened to ``float32``,
  which is exact, and say ``float32``. Decoding gives a writable numpy array, whichever
  of the two was sent; ``torch.from_numpy`` turns it into a tensor without a copy.
* **Bytes**: a msgpack ``bin``; in JSON, ``{"base64": "<standard base64, padded>"}``.
* **numpy scalars** become plain numbers (encoding only).

The decoder also accepts, in either format, ``data`` as a nested list, or as bytes (a
``bin``, or ``{"base64": ...}`` in JSON: the compact way to send an array in JSON). The
conventions apply inside dicts, lists and tuples; a bare float ``NaN`` outside an array
is JSON ``null``, as msgspec writes it. A result that neither format can hold (a Python
object of some class) fails to encode with a ``TypeError`` naming its type.
"""

from __future__ import annotations

import base64
import binascii
import math
import sys
from collections.abc import Callable
from typing import Any, Literal

import msgspec
import numpy as np
import numpy.typing as npt

__all__ = ["DTYPES", "CodecError", "Format", "decode", "encode"]

Format = Literal["json", "msgpack"]

#: The dtypes an array may have on the wire.
DTYPES = frozenset(
    ["bool", "float16", "float32", "float64", "complex64", "complex128"]
    + [f"{sign}int{bits}" for sign in ("", "u") for bits in (8, 16, 32, 64)]
)
_ARRAY_KEYS = frozenset({"dtype", "shape", "data"})
_PLAIN = frozenset({str, int, float, bool, type(None)})


class CodecError(ValueError):
    """A body is not valid JSON or msgpack, or a tagged value in it is malformed."""


def _unencodable(value: Any) -> Any:
    raise TypeError(f"cannot encode a {type(value).__module__}.{type(value).__qualname__}")


_ENCODERS: dict[str, Callable[[Any], bytes]] = {
    "json": msgspec.json.Encoder(enc_hook=_unencodable).encode,
    "msgpack": msgspec.msgpack.Encoder(enc_hook=_unencodable).encode,
}
_DECODERS: dict[str, Callable[[bytes], Any]] = {
    "json": msgspec.json.Decoder().decode,
    "msgpack": msgspec.msgpack.Decoder().decode,
}


def encode(value: Any, fmt: Format) -> bytes:
    """``value`` in ``fmt``, arrays and bytes as the module docstring describes.

    Raises:
        TypeError: ``value`` holds something neither format can represent.
    """
    return _ENCODERS[fmt](_to_wire(value, fmt == "msgpack"))


def decode(body: bytes, fmt: Format) -> Any:
    """The value that :func:`encode` wrote (arrays come back as numpy arrays).

    Raises:
        CodecError: ``body`` is malformed, or an array or base64 map in it is.
    """
    try:
        return _from_wire(_DECODERS[fmt](body))
    except msgspec.DecodeError as exc:
        raise CodecError(f"malformed {fmt} body ({len(body)} bytes): {exc}") from None
    except RecursionError:
        raise CodecError(f"the {fmt} body nests too deeply ({len(body)} bytes)") from None


# -- encoding ---------------------------------------------------------------------------


def _to_wire(value: Any, binary: bool) -> Any:
    if type(value) in _PLAIN:  # exact types: numpy's float64 subclasses float
        return value
    if isinstance(value, dict):
        return {key: _to_wire(item, binary) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_wire(item, binary) for item in value]
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value) if binary else {"base64": base64.b64encode(value).decode("ascii")}
    if isinstance(value, np.ndarray):
        return _array_to_wire(value, binary)
    if isinstance(value, np.generic):
        return _to_wire(value.item(), binary)
    torch = sys.modules.get("torch")  # a tensor implies torch is imported; never import it
    if torch is not None and isinstance(value, torch.Tensor):
        return _array_to_wire(_tensor_to_numpy(value), binary)
    return value  # msgspec's own types (dataclasses, Structs, ...), or its enc_hook raises


def _tensor_to_numpy(tensor: Any) -> npt.NDArray[Any]:
    tensor = tensor.detach().cpu().resolve_conj().resolve_neg()
    try:
        return tensor.numpy()  # type: ignore[no-any-return]
    except TypeError:  # bfloat16, float8...: float32 holds every value exactly
        return tensor.float().numpy()  # type: ignore[no-any-return]


def _array_to_wire(array: npt.NDArray[Any], binary: bool) -> dict[str, Any]:
    name = array.dtype.name
    if name not in DTYPES:
        raise TypeError(f"cannot encode an array of dtype {array.dtype} (not in {sorted(DTYPES)})")
    wire: dict[str, Any] = {"dtype": name, "shape": list(array.shape)}
    if binary:
        little = array.dtype.newbyteorder("<")
        wire["data"] = np.ascontiguousarray(array, dtype=little).tobytes()
    elif array.dtype.kind == "c":
        raise TypeError(f"a {name} array has no JSON form; ask for application/msgpack")
    else:
        wire["data"] = _json_elements(array.ravel())
    return wire


def _json_elements(flat: npt.NDArray[Any]) -> list[Any]:
    elements: list[Any] = flat.tolist()
    if flat.dtype.kind == "f" and not np.isfinite(flat).all():
        return [x if math.isfinite(x) else _nonfinite_name(x) for x in elements]
    return elements


def _nonfinite_name(x: float) -> str:
    return "NaN" if math.isnan(x) else ("Infinity" if x > 0 else "-Infinity")


# -- decoding ---------------------------------------------------------------------------


def _from_wire(value: Any) -> Any:
    """Turn the tagged maps of a decoded body into arrays and bytes, recursively."""
    if isinstance(value, dict):
        if len(value) == 3 and value.keys() == _ARRAY_KEYS:
            return _array_from_wire(value)
        if len(value) == 1 and "base64" in value:
            return _bytes_from_wire(value["base64"])
        return {key: _from_wire(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_from_wire(item) for item in value]
    return value


def _bytes_from_wire(text: Any) -> bytes:
    if not isinstance(text, str):
        raise CodecError(f"'base64' must be a string, got {type(text).__name__}")
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error as exc:
        raise CodecError(f"invalid base64 ({len(text)} characters): {exc}") from None


def _array_from_wire(wire: dict[str, Any]) -> npt.NDArray[Any]:
    name, shape = wire["dtype"], wire["shape"]
    if name not in DTYPES:
        raise CodecError(f"array dtype must be one of {sorted(DTYPES)}, got {name!r}")
    if not (isinstance(shape, list) and all(type(n) is int and n >= 0 for n in shape)):
        raise CodecError(f"array shape must be a list of integers >= 0, got {shape!r}")
    size = math.prod(shape)
    data = wire["data"]
    if isinstance(data, dict) and data.keys() == {"base64"}:
        data = _bytes_from_wire(data["base64"])
    if isinstance(data, bytes):
        dtype = np.dtype(name).newbyteorder("<")
        if len(data) != size * dtype.itemsize:
            raise CodecError(
                f"a {name} array of shape {shape} needs {size * dtype.itemsize} bytes, "
                f"got {len(data)}"
            )
        return np.frombuffer(data, dtype=dtype).astype(name).reshape(shape)
    if not isinstance(data, list):
        raise CodecError(f"array data must be a list or bytes, got {type(data).__name__}")
    try:
        array = np.array(data, dtype=name)
    except (ValueError, TypeError, OverflowError) as exc:
        raise CodecError(f"array data do not fit dtype {name}: {exc}") from None
    if array.size != size:
        raise CodecError(f"an array of shape {shape} needs {size} elements, got {array.size}")
    return array.reshape(shape)
