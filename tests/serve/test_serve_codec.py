"""The wire encoding round-trips arrays, tensors, bytes and plain values, and rejects
malformed bodies with errors that name the bad value."""

from __future__ import annotations

import base64
import json
from typing import Any

import msgspec
import numpy as np
import pytest
import torch

from torchweir.serve.codec import DTYPES, CodecError, Format, decode, encode

FORMATS: tuple[Format, ...] = ("json", "msgpack")


def same(a: Any, b: Any) -> bool:
    """Deep equality where arrays compare by dtype, shape and values (NaN == NaN)."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (
            isinstance(a, np.ndarray)
            and isinstance(b, np.ndarray)
            and a.dtype == b.dtype
            and a.shape == b.shape
            and np.array_equal(a, b, equal_nan=a.dtype.kind in "fc")
        )
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


@pytest.mark.parametrize(
    ("fmt", "dtype"),
    [
        (fmt, dtype)
        for fmt in FORMATS
        for dtype in sorted(DTYPES)
        if not (fmt == "json" and dtype.startswith("complex"))  # no JSON form: see below
    ],
)
def test_numpy_arrays_of_every_dtype_round_trip(fmt: Format, dtype: str) -> None:
    rng = np.random.default_rng(0)
    array = (rng.standard_normal((2, 3, 4)) * 100).astype(dtype)
    back = decode(encode({"result": array}, fmt), fmt)["result"]
    assert same(back, array)
    assert back.flags.writeable
    assert back.flags.c_contiguous


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    "array",
    [
        np.full((), 7.5, np.float32),  # 0-d
        np.zeros((0, 3), np.int16),  # empty
        np.arange(24, dtype=np.int32).reshape(4, 6)[:, ::2],  # not contiguous
        np.arange(6, dtype=">f8").reshape(2, 3),  # big-endian
        np.array([np.nan, np.inf, -np.inf, 1.5, -0.0], np.float64),
        np.array([[True, False]]),
    ],
    ids=["0d", "empty", "strided", "big-endian", "non-finite", "bool"],
)
def test_awkward_arrays_round_trip(fmt: Format, array: np.ndarray[Any, Any]) -> None:
    back = decode(encode(array, fmt), fmt)
    assert back.dtype == array.dtype.newbyteorder("=")
    assert back.shape == array.shape
    np.testing.assert_array_equal(back, array)


@pytest.mark.parametrize("fmt", FORMATS)
def test_torch_tensors_come_back_as_numpy_with_their_dtype_and_shape(fmt: Format) -> None:
    tensor = torch.arange(2 * 3 * 4, dtype=torch.float16).reshape(2, 3, 4).transpose(1, 2)
    back = decode(encode([tensor, torch.tensor(3, dtype=torch.int64)], fmt), fmt)
    assert same(back[0], tensor.numpy())
    assert same(back[1], np.array(3, np.int64))


@pytest.mark.parametrize("fmt", FORMATS)
def test_bfloat16_widens_to_float32_exactly(fmt: Format) -> None:
    tensor = torch.tensor([1.0, -2.5, 3.140625], dtype=torch.bfloat16)
    back = decode(encode(tensor, fmt), fmt)
    assert same(back, tensor.float().numpy())


def test_documented_layouts() -> None:
    array = np.array([[1.0, 2.0, 3.0]], np.float32)
    assert json.loads(encode(array, "json")) == {
        "dtype": "float32",
        "shape": [1, 3],
        "data": [1.0, 2.0, 3.0],
    }
    assert msgspec.msgpack.decode(encode(array, "msgpack")) == {
        "dtype": "float32",
        "shape": [1, 3],
        "data": array.astype("<f4").tobytes(),
    }
    assert json.loads(encode(np.array([np.nan, -np.inf]), "json"))["data"] == [
        "NaN",
        "-Infinity",
    ]
    assert json.loads(encode(b"\x00\xffhi", "json")) == {"base64": "AP9oaQ=="}
    assert msgspec.msgpack.decode(encode(b"\x00\xffhi", "msgpack")) == b"\x00\xffhi"


@pytest.mark.parametrize("fmt", FORMATS)
def test_plain_values_bytes_and_numpy_scalars(fmt: Format) -> None:
    value = {"a": [1, 2.5, "x", None, True], "b": b"\x00raw", "c": (1, 2), "n": np.float64(5.5)}
    assert same(decode(encode(value, fmt), fmt), {**value, "c": [1, 2], "n": 5.5})


def test_json_accepts_compact_and_nested_array_data() -> None:
    raw = np.arange(4, dtype="<u2").tobytes()
    compact = {
        "dtype": "uint16",
        "shape": [2, 2],
        "data": {"base64": base64.b64encode(raw).decode()},
    }
    nested = {"dtype": "uint16", "shape": [2, 2], "data": [[0, 1], [2, 3]]}
    expected = np.arange(4, dtype=np.uint16).reshape(2, 2)
    assert same(decode(json.dumps(compact).encode(), "json"), expected)
    assert same(decode(json.dumps(nested).encode(), "json"), expected)


def test_unencodable_values_name_their_type() -> None:
    class Thing:
        pass

    with pytest.raises(TypeError, match="Thing"):
        encode({"x": Thing()}, "json")
    with pytest.raises(TypeError, match="complex64 array has no JSON form"):
        encode(np.zeros(2, np.complex64), "json")
    with pytest.raises(TypeError, match="dtype <U1"):
        encode(np.array(["a"]), "msgpack")


@pytest.mark.parametrize(
    ("body", "fmt", "message"),
    [
        (b"{bad", "json", "malformed json body"),
        (b"\xc1", "msgpack", "malformed msgpack body"),
        (b'{"base64": "***"}', "json", "invalid base64"),
        (b'{"base64": 5}', "json", "'base64' must be a string"),
        (b'{"dtype": "float128", "shape": [1], "data": [1]}', "json", "'float128'"),
        (b'{"dtype": "int8", "shape": [-1], "data": [1]}', "json", r"\[-1\]"),
        (b'{"dtype": "int8", "shape": [3], "data": [1, 2]}', "json", "needs 3 elements, got 2"),
        (b'{"dtype": "uint8", "shape": [1], "data": [300]}', "json", "do not fit dtype uint8"),
        (b'{"dtype": "int8", "shape": [1], "data": "x"}', "json", "list or bytes, got str"),
        (b"[" * 5000 + b"]" * 5000, "json", "nests too deeply"),
        (b"[" * 100_000 + b"]" * 100_000, "json", "nests too deeply"),
    ],
)
def test_malformed_bodies_raise_codec_errors(body: bytes, fmt: Format, message: str) -> None:
    with pytest.raises(CodecError, match=message):
        decode(body, fmt)


def test_raw_array_bytes_must_match_the_shape() -> None:
    wire = msgspec.msgpack.encode({"dtype": "float32", "shape": [2], "data": b"\x00" * 7})
    with pytest.raises(CodecError, match="needs 8 bytes, got 7"):
        decode(wire, "msgpack")
