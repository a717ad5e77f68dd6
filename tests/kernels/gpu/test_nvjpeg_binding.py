"""The nvJPEG binding's loading logic, on any machine (no GPU, no libnvjpeg needed)."""

from __future__ import annotations

import ctypes
from pathlib import Path
from typing import Any

import pytest

from torchweir.kernels.gpu import nvjpeg


@pytest.fixture
def fresh_loader(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nvjpeg, "_library", None)


def test_missing_library_is_a_clear_error_naming_what_was_tried(
    fresh_loader: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    bogus = tmp_path / "libnvjpeg.so.99"
    bogus.write_bytes(b"not an ELF file")
    monkeypatch.setenv("TORCHWEIR_NVJPEG", str(bogus))
    monkeypatch.setattr(nvjpeg.sys, "path", [])
    monkeypatch.setattr(nvjpeg.ctypes.util, "find_library", lambda name: None)
    with pytest.raises(nvjpeg.NvjpegUnavailable) as caught:
        nvjpeg.load_nvjpeg()
    message = str(caught.value)
    assert str(bogus) in message
    assert "TORCHWEIR_NVJPEG" in message
    assert "decoder = 'torchvision'" in message


def test_nothing_found_at_all_says_so(fresh_loader: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TORCHWEIR_NVJPEG", raising=False)
    monkeypatch.setattr(nvjpeg.sys, "path", [])
    monkeypatch.setattr(nvjpeg.ctypes.util, "find_library", lambda name: None)
    with pytest.raises(nvjpeg.NvjpegUnavailable, match=r"no libnvjpeg\.so found"):
        nvjpeg.load_nvjpeg()


def test_a_library_without_the_batched_api_is_refused() -> None:
    libc = ctypes.CDLL(None)  # the process itself: no nvjpeg symbols
    with pytest.raises(nvjpeg.NvjpegUnavailable, match="nvjpegCreateEx"):
        nvjpeg._declare(libc)


def test_a_failed_call_names_the_call_and_the_status() -> None:
    expected = "nvjpegDecodeBatched failed: NVJPEG_STATUS_BAD_JPEG"
    with pytest.raises(nvjpeg.NvjpegError, match=expected):
        nvjpeg._check("nvjpegDecodeBatched", 3)
    nvjpeg._check("nvjpegDecodeBatched", 0)
    assert nvjpeg.NvjpegError("x", 42).status == 42
    assert "NVJPEG_STATUS_42" in str(nvjpeg.NvjpegError("x", 42))


def test_image_descriptor_matches_nvjpeg_image_t_layout() -> None:
    # four plane pointers, then four pitches (nvjpeg.h, NVJPEG_MAX_COMPONENT = 4)
    assert ctypes.sizeof(nvjpeg._Image) == 8 * ctypes.sizeof(ctypes.c_void_p)
    assert nvjpeg._Image.pitch.offset == 4 * ctypes.sizeof(ctypes.c_void_p)


class FakeNvjpeg:
    """Stands in for libnvjpeg: hands out numbered handles and records the calls."""

    def __init__(self, create_status: int = 0) -> None:
        self.create_status = create_status
        self.created: list[int] = []
        self.destroyed: list[int] = []
        self.decodes: list[tuple[int, bool]] = []  # (handle, shared lock held)
        self._next = 100

    def _new(self, out: Any) -> int:
        self._next += 1
        out._obj.value = self._next
        return 0

    def nvjpegCreateEx(self, backend: int, a: Any, b: Any, flags: int, out: Any) -> int:
        if self.create_status:
            return self.create_status
        self._new(out)
        self.created.append(self._next)
        return 0

    def nvjpegJpegStateCreate(self, handle: Any, out: Any) -> int:
        return self._new(out)

    nvjpegJpegStreamCreate = nvjpegJpegStateCreate

    def nvjpegDecodeBatchedInitialize(self, *args: Any) -> int:
        return 0

    def nvjpegDecodeBatched(self, handle: Any, *args: Any) -> int:
        held = any(shared.lock.locked() for shared in nvjpeg._shared.values())
        self.decodes.append((handle.value, held))
        return 0

    def nvjpegDestroy(self, handle: Any) -> None:
        self.destroyed.append(handle.value)

    def nvjpegJpegStateDestroy(self, pointer: Any) -> None:
        pass

    nvjpegJpegStreamDestroy = nvjpegJpegStateDestroy


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeNvjpeg:
    lib = FakeNvjpeg()
    monkeypatch.setattr(nvjpeg, "load_nvjpeg", lambda: lib)
    monkeypatch.setattr(nvjpeg, "_shared", {})
    return lib


def decode_once(decoder: nvjpeg.BatchDecoder) -> None:
    decoder.decode([(0x1000, 10)], [[(0x2000, 4)] * 3], "rgb", 0)


def test_each_decoder_owns_its_handle_by_default(fake: FakeNvjpeg) -> None:
    a, b = nvjpeg.BatchDecoder(), nvjpeg.BatchDecoder()
    decode_once(a)
    decode_once(b)
    assert len(fake.created) == 2
    assert [h for h, _ in fake.decodes] == fake.created
    a.close()
    b.close()
    assert fake.destroyed == fake.created


@pytest.mark.parametrize("mode", ["shared", "serialized"])
def test_decoders_of_one_gpu_share_its_handle_until_the_last_closes(
    fake: FakeNvjpeg, mode: str
) -> None:
    a, b = nvjpeg.BatchDecoder(0, mode), nvjpeg.BatchDecoder(0, mode)
    other_gpu = nvjpeg.BatchDecoder(1, mode)
    assert len(fake.created) == 2
    for decoder in (a, b, other_gpu):
        decode_once(decoder)
    gpu0, gpu1 = fake.created
    assert fake.decodes == [(gpu0, mode == "serialized")] * 2 + [(gpu1, mode == "serialized")]
    a.close()
    assert fake.destroyed == []
    b.close()
    other_gpu.close()
    assert fake.destroyed == [gpu0, gpu1]
    assert nvjpeg._shared == {}


def test_an_unknown_handle_mode_lists_the_known_ones(fake: FakeNvjpeg) -> None:
    with pytest.raises(ValueError, match=r"own.*shared.*serialized"):
        nvjpeg.BatchDecoder(0, "pooled")


def test_a_gpu_without_the_hardware_decoder_is_unavailable(fake: FakeNvjpeg) -> None:
    fake.create_status = 7  # NVJPEG_STATUS_ARCH_MISMATCH
    for mode in nvjpeg.HANDLE_MODES:
        with pytest.raises(nvjpeg.NvjpegUnavailable, match="no hardware JPEG decoder"):
            nvjpeg.BatchDecoder(0, mode)
    assert nvjpeg._shared == {}


def test_decode_tensor_names_a_bad_handle_mode() -> None:
    from torchweir.kernels.gpu import DecodeTensor

    with pytest.raises(ValueError, match="nvjpeg_handle must be one of"):
        DecodeTensor(nvjpeg_handle="pooled")


@pytest.mark.parametrize(
    ("decoder", "gpus", "binding"),
    [
        ("auto", 1, False),  # torchvision: it matched or beat the binding on one GPU
        ("auto", 2, True),  # torchvision would rebuild its decoder at each device change
        ("nvjpeg", 1, True),
        ("torchvision", 2, False),
    ],
)
def test_which_decoder_an_instance_takes(
    monkeypatch: pytest.MonkeyPatch, decoder: str, gpus: int, binding: bool
) -> None:
    import enum
    import sys
    import types

    torch = pytest.importorskip("torch")
    from torchweir.kernels.base import InstanceContext
    from torchweir.kernels.gpu import decode

    if "torchvision.io" not in sys.modules:
        package = types.ModuleType("torchvision")
        package.io = types.ModuleType("torchvision.io")  # type: ignore[attr-defined]
        package.io.ImageReadMode = enum.Enum("ImageReadMode", {"RGB": 3})  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, "torchvision", package)
        monkeypatch.setitem(sys.modules, "torchvision.io", package.io)  # type: ignore[attr-defined]
    made: list[tuple[int, str]] = []
    monkeypatch.setattr(decode, "BatchDecoder", lambda *args: made.append(args) or "binding")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
    kernel = decode.DecodeTensor(decoder=decoder, nvjpeg_handle="shared")
    instance = kernel.setup(InstanceContext(node="decode", device="cuda:1"))
    assert isinstance(instance, decode.DecodeTensor)
    assert instance.hardware is binding
    assert made == ([(1, "shared")] if binding else [])
