"""The nvJPEG binding's loading logic, on any machine (no GPU, no libnvjpeg needed)."""

from __future__ import annotations

import ctypes
from pathlib import Path

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
