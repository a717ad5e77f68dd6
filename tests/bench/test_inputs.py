from __future__ import annotations

from pathlib import Path

import pytest

from torchweir.bench import load_images, synthetic
from torchweir.errors import ConfigError


def test_load_images_reads_jpeg_and_png_sorted_by_path(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    for name, data in {
        "b.JPG": b"b",
        "a.png": b"a",
        "sub/c.jpeg": b"c",
        "notes.txt": b"no",
        "d.gif": b"no",
    }.items():
        (tmp_path / name).write_bytes(data)
    assert load_images(tmp_path) == [b"a", b"b", b"c"]
    assert load_images(tmp_path, limit=2) == [b"a", b"b"]


def test_an_empty_image_folder_is_a_config_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("no images here")
    with pytest.raises(
        ConfigError, match=r"no images \(\*\.jpg, \*\.jpeg, \*\.png\) in folder"
    ) as e:
        load_images(tmp_path)
    assert str(tmp_path) in str(e.value)


def test_a_missing_or_non_folder_path_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_images(tmp_path / "nope")
    (tmp_path / "x.jpg").write_bytes(b"x")
    with pytest.raises(ConfigError, match="is not a folder"):
        load_images(tmp_path / "x.jpg")


def test_synthetic_inputs_are_deterministic() -> None:
    assert synthetic("int", count=4) == [0, 1, 2, 3]
    blobs = synthetic("bytes:16", count=3, seed=1)
    assert [len(b) for b in blobs] == [16, 16, 16]
    assert blobs == synthetic("bytes:16", count=3, seed=1) != synthetic("bytes:16", count=3)


def test_synthetic_tensors_have_the_shape_and_dtype() -> None:
    torch = pytest.importorskip("torch")
    (t,) = synthetic("tensor:2x3x4", count=1)
    assert t.shape == (2, 3, 4)
    assert t.dtype == torch.uint8


@pytest.mark.parametrize(
    "spec", ["", "float", "int:3", "bytes:", "bytes:0", "tensor:3x0", "tensor:axb"]
)
def test_a_bad_synthetic_spec_is_a_config_error_listing_the_forms(spec: str) -> None:
    with pytest.raises(
        ConfigError, match=f"bad synthetic input {spec!r}: expected 'int', 'bytes:N'"
    ):
        synthetic(spec)
