"""nvJPEG's batched hardware decode through ctypes: one decoder state per instance, on its
stream.

torchvision's ``decode_jpeg(..., device="cuda")`` drives the same hardware decoder
(``NVJPEG_BACKEND_HARDWARE``), but every call in the process takes one mutex, runs on a
stream of torchvision's own, synchronises that stream twice, copies the JPEG bytes from
pageable memory and rebuilds its one decoder whenever the device changes. Here each
instance owns its nvJPEG state (and its own handle, or one shared per GPU: see
:data:`HANDLE_MODES`) and decodes on its own stream from pinned memory; the instance's
completion waits for the batch like for any other GPU work. (nvJPEG itself still waits on
its own events while it reuses internal buffers within a batch.)

Only what batched decoding needs is bound. Images the hardware cannot decode (progressive
or arithmetic-coded JPEG, unusual subsampling) are reported by :meth:`BatchDecoder.supports`
so the caller can decode them another way.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import glob
import os
import sys
import threading
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["HANDLE_MODES", "BatchDecoder", "NvjpegError", "NvjpegUnavailable", "load_nvjpeg"]

_MAX_COMPONENT = 4
_BACKEND_HARDWARE = 3
#: nvjpegOutputFormat_t: planar colour, interleaved colour, or the JPEG's own YUV planes
_OUTPUT = {"rgb": 3, "bgr": 4, "rgbi": 5, "bgri": 6, "yuv": 1}
_ARCH_MISMATCH = 7
_STATUS = {
    1: "NOT_INITIALIZED",
    2: "INVALID_PARAMETER",
    3: "BAD_JPEG",
    4: "JPEG_NOT_SUPPORTED",
    5: "ALLOCATOR_FAILURE",
    6: "EXECUTION_FAILED",
    7: "ARCH_MISMATCH",
    8: "INTERNAL_ERROR",
    9: "IMPLEMENTATION_NOT_SUPPORTED",
    10: "INCOMPLETE_BITSTREAM",
}
#: Where pip's CUDA packages and torchvision's wheel put the library.
_LIBRARY_GLOBS = (
    "nvidia/cu*/lib/libnvjpeg.so*",
    "nvidia/nvjpeg/lib/libnvjpeg.so*",
    "torchvision.libs/libnvjpeg*.so*",
)


class NvjpegUnavailable(RuntimeError):
    """libnvjpeg cannot be loaded, or this GPU has no hardware JPEG decoder."""


class NvjpegError(RuntimeError):
    """An nvJPEG call failed; ``status`` is nvJPEG's code."""

    def __init__(self, call: str, status: int) -> None:
        super().__init__(f"{call} failed: NVJPEG_STATUS_{_STATUS.get(status, status)}")
        self.call = call
        self.status = status


class _Image(ctypes.Structure):
    """``nvjpegImage_t``: a pointer and a row pitch per output plane."""

    _fields_ = [
        ("channel", ctypes.c_void_p * _MAX_COMPONENT),
        ("pitch", ctypes.c_size_t * _MAX_COMPONENT),
    ]


_lock = threading.Lock()
_library: Any = None


def load_nvjpeg() -> Any:
    """libnvjpeg's functions, declared (see :func:`_declare`), loaded once.

    Looked for at ``$TORCHWEIR_NVJPEG``, then in pip's CUDA packages and torchvision's
    wheel, then on the system's library path.

    Raises:
        NvjpegUnavailable: no loadable libnvjpeg was found.
    """
    global _library
    with _lock:
        if _library is None:
            _library = _declare(_open())
        return _library


def _open() -> ctypes.CDLL:
    candidates: list[str] = []
    if os.environ.get("TORCHWEIR_NVJPEG"):
        candidates.append(os.environ["TORCHWEIR_NVJPEG"])
    for root in dict.fromkeys(p for p in sys.path if p and Path(p).is_dir()):
        for pattern in _LIBRARY_GLOBS:
            candidates.extend(sorted(glob.glob(os.path.join(root, pattern)), reverse=True))
    found = ctypes.util.find_library("nvjpeg")
    if found:
        candidates.append(found)
    failures = []
    for path in candidates:
        try:
            return ctypes.CDLL(path)
        except OSError as exc:
            failures.append(f"{path}: {exc}")
    tried = "; ".join(failures) or "no libnvjpeg.so found"
    raise NvjpegUnavailable(
        f"cannot load libnvjpeg ({tried}); install the CUDA toolkit's nvJPEG or set "
        "TORCHWEIR_NVJPEG to its path, or decode with decoder = 'torchvision'"
    )


#: Calls that return in microseconds: made holding the GIL. Releasing it costs little,
#: but winning it back under load can wait for the switch interval, and a batch makes
#: two of these per image.
_QUICK = frozenset(
    {"nvjpegJpegStreamParseHeader", "nvjpegDecodeBatchedSupported", "nvjpegGetImageInfo"}
)


def _declare(lib: ctypes.CDLL) -> Any:
    """``lib``'s functions with their signatures: the long ones (the decode) release the
    GIL, the quick ones (:data:`_QUICK`) keep it."""
    p, i, size = ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t
    pp, ip = ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_int)
    signatures: dict[str, list[Any]] = {
        "nvjpegCreateEx": [i, p, p, ctypes.c_uint, pp],
        "nvjpegDestroy": [p],
        "nvjpegJpegStateCreate": [p, pp],
        "nvjpegJpegStateDestroy": [p],
        "nvjpegJpegStreamCreate": [p, pp],
        "nvjpegJpegStreamDestroy": [p],
        "nvjpegJpegStreamParseHeader": [p, ctypes.c_char_p, size, p],
        "nvjpegDecodeBatchedSupported": [p, p, ip],
        "nvjpegDecodeBatchedInitialize": [p, p, i, i, i],
        "nvjpegGetImageInfo": [p, ctypes.c_char_p, size, ip, ip, ip, ip],
        "nvjpegDecodeBatched": [p, p, pp, ctypes.POINTER(size), ctypes.POINTER(_Image), p],
    }
    holding_gil = ctypes.PyDLL(lib._name, handle=lib._handle)
    functions = types.SimpleNamespace()
    for name, argtypes in signatures.items():
        try:
            function = getattr(holding_gil if name in _QUICK else lib, name)
        except AttributeError:
            raise NvjpegUnavailable(f"{lib._name} has no {name}: too old an nvJPEG") from None
        function.argtypes = argtypes
        function.restype = ctypes.c_int
        setattr(functions, name, function)
    return functions


def _check(call: str, status: int) -> None:
    if status != 0:
        raise NvjpegError(call, status)


#: How instances on one GPU use nvJPEG: each its own handle; one handle shared; or one
#: handle shared with its batched decode calls taken in turn.
HANDLE_MODES = ("own", "shared", "serialized")


class _SharedHandle:
    """One nvJPEG handle for a GPU (nvJPEG's handle is thread-safe; states are not)."""

    def __init__(self, lib: Any) -> None:
        self.handle = _create_handle(lib)
        self.lock = threading.Lock()  # taken around batched decodes when serialized
        self.users = 0


_shared: dict[int, _SharedHandle] = {}


def _create_handle(lib: Any) -> ctypes.c_void_p:
    handle = ctypes.c_void_p()
    status = lib.nvjpegCreateEx(_BACKEND_HARDWARE, None, None, 0, ctypes.byref(handle))
    if status == _ARCH_MISMATCH:
        raise NvjpegUnavailable("this GPU has no hardware JPEG decoder")
    _check("nvjpegCreateEx", status)
    return handle


class BatchDecoder:
    """One instance's hardware JPEG decoder. Not thread-safe: one per instance thread.

    Create it with the instance's device current, and pass that device's index.
    ``handle_mode`` (one of :data:`HANDLE_MODES`) says whether it shares the GPU's
    nvJPEG handle with the other decoders on that GPU, and whether their batched decode
    calls then take turns.

    Raises:
        NvjpegUnavailable: no libnvjpeg, or the GPU has no hardware decoder.
    """

    def __init__(self, device: int = 0, handle_mode: str = "own") -> None:
        if handle_mode not in HANDLE_MODES:
            raise ValueError(f"handle_mode must be one of {HANDLE_MODES}, got {handle_mode!r}")
        self._lib = load_nvjpeg()
        self._device = device
        self._shared: _SharedHandle | None = None
        self._turns: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
        if handle_mode == "own":
            self._handle = _create_handle(self._lib)
        else:
            with _lock:
                shared = _shared.get(device)
                if shared is None:
                    shared = _shared[device] = _SharedHandle(self._lib)
                shared.users += 1
            self._shared = shared
            self._handle = shared.handle
            if handle_mode == "serialized":
                self._turns = shared.lock
        self._state = ctypes.c_void_p()
        self._stream = ctypes.c_void_p()
        try:
            _check(
                "nvjpegJpegStateCreate",
                self._lib.nvjpegJpegStateCreate(self._handle, ctypes.byref(self._state)),
            )
            _check(
                "nvjpegJpegStreamCreate",
                self._lib.nvjpegJpegStreamCreate(self._handle, ctypes.byref(self._stream)),
            )
        except NvjpegError:
            self.close()
            raise
        self._batch_format: tuple[int, int] | None = None

    def supports(self, data: bytes) -> bool:
        """Whether the hardware decodes this JPEG (baseline Huffman, common subsampling)."""
        status = self._lib.nvjpegJpegStreamParseHeader(self._handle, data, len(data), self._stream)
        if status != 0:
            return False
        answer = ctypes.c_int(-1)
        status = self._lib.nvjpegDecodeBatchedSupported(
            self._handle, self._stream, ctypes.byref(answer)
        )
        return status == 0 and answer.value == 0

    def plane_sizes(self, data: bytes) -> list[tuple[int, int]]:
        """(width, height) of each component of this JPEG, luma first.

        Raises:
            NvjpegError: nvJPEG cannot read the header.
        """
        components, subsampling = ctypes.c_int(), ctypes.c_int()
        widths, heights = (ctypes.c_int * _MAX_COMPONENT)(), (ctypes.c_int * _MAX_COMPONENT)()
        _check(
            "nvjpegGetImageInfo",
            self._lib.nvjpegGetImageInfo(
                self._handle,
                data,
                len(data),
                ctypes.byref(components),
                ctypes.byref(subsampling),
                widths,
                heights,
            ),
        )
        return [(widths[c], heights[c]) for c in range(components.value)]

    def decode(
        self,
        sources: Sequence[tuple[int, int]],
        planes: Sequence[Sequence[tuple[int, int]]],
        output_format: str,
        stream: int,
    ) -> None:
        """Enqueue the decode of a batch on ``stream``; returns before the GPU is done.

        ``sources[k]`` is the host address and length of image ``k``'s JPEG bytes, which
        should lie in pinned memory: nvJPEG copies each image to the device on ``stream``,
        and a copy from pageable memory first waits, blocking this thread, for the stream
        to drain (CUDA's rule for pageable copies). ``planes[k]`` gives, for each output
        plane of image ``k`` (three for ``rgb``/``bgr``, one for the interleaved formats, one
        per component for ``yuv``), its device address and row pitch in bytes. The caller
        keeps both alive until ``stream`` has passed this point.

        ``output_format`` is ``rgb``, ``bgr``, ``rgbi``, ``bgri`` or ``yuv``.

        Raises:
            NvjpegError: nvJPEG rejected the batch (a bitstream it cannot decode).
        """
        n = len(sources)
        if n == 0:
            return
        fmt = (n, _OUTPUT[output_format])
        data = (ctypes.c_void_p * n)(*(address for address, _ in sources))
        lengths = (ctypes.c_size_t * n)(*(length for _, length in sources))
        outputs = (_Image * n)()
        for out, image_planes in zip(outputs, planes, strict=True):
            for c, (address, pitch) in enumerate(image_planes):
                out.channel[c] = address
                out.pitch[c] = pitch
        with self._turns:
            if fmt != self._batch_format:  # re-initialising costs; batch sizes often repeat
                self._batch_format = None
                _check(
                    "nvjpegDecodeBatchedInitialize",
                    self._lib.nvjpegDecodeBatchedInitialize(
                        self._handle, self._state, n, 1, fmt[1]
                    ),
                )
                self._batch_format = fmt
            _check(
                "nvjpegDecodeBatched",
                self._lib.nvjpegDecodeBatched(
                    self._handle, self._state, data, lengths, outputs, ctypes.c_void_p(stream)
                ),
            )

    def close(self) -> None:
        """Free the state, the stream parser and the handle (a shared handle once its last
        user closes). Call once the stream is idle."""
        for name, attr in (
            ("nvjpegJpegStreamDestroy", "_stream"),
            ("nvjpegJpegStateDestroy", "_state"),
        ):
            pointer = getattr(self, attr)
            if pointer.value:
                getattr(self._lib, name)(pointer)
                setattr(self, attr, ctypes.c_void_p())
        if self._shared is None:
            if self._handle.value:
                self._lib.nvjpegDestroy(self._handle)
        elif self._handle.value:
            with _lock:
                self._shared.users -= 1
                if self._shared.users == 0:
                    del _shared[self._device]
                    self._lib.nvjpegDestroy(self._shared.handle)
        self._handle = ctypes.c_void_p()
