"""What a benchmark sends: encoded images from a folder, or synthetic items from a spec.

Inputs are loaded once, before any timing, and cycled in order; the same command sends
the same bytes in the same order on every run (synthetic data is seeded).
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

from torchweir.errors import ConfigError

__all__ = ["IMAGE_SUFFIXES", "load_images", "synthetic"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
SYNTHETIC_SPECS = "'int', 'bytes:N' or 'tensor:AxBx...' (uint8), e.g. 'tensor:1x3x224x224'"


def load_images(folder: str | Path, limit: int | None = None) -> list[bytes]:
    """The encoded bytes of the images in ``folder`` and its subfolders, sorted by path.

    Args:
        folder: a directory holding ``*.jpg``, ``*.jpeg`` or ``*.png`` files (any case).
        limit: keep only the first ``limit`` images, to bound memory on large datasets.

    Raises:
        ConfigError: the folder does not exist, is not a directory or holds no image.
    """
    path = Path(folder)
    if not path.exists():
        raise ConfigError(f"image folder {str(path)!r} does not exist")
    if not path.is_dir():
        raise ConfigError(f"{str(path)!r} is not a folder; --images wants a folder of images")
    files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise ConfigError(
            f"no images ({', '.join('*' + s for s in IMAGE_SUFFIXES)}) in folder {str(path)!r}"
        )
    if limit is not None:
        files = files[:limit]
    try:
        return [p.read_bytes() for p in files]
    except OSError as exc:
        raise ConfigError(f"cannot read image {exc.filename!r}: {exc.strerror}") from exc


def synthetic(spec: str, count: int = 256, seed: int = 0) -> list[Any]:
    """``count`` synthetic inputs for graphs that do not take images.

    Specs: ``int`` (the integers 0 .. count-1), ``bytes:N`` (N random bytes each),
    ``tensor:AxBx...`` (random uint8 torch tensors of that shape; torch is imported only
    for this one).

    Raises:
        ConfigError: the spec is not one of those, or torch is missing for a tensor.
    """
    kind, _, arg = spec.strip().partition(":")
    if kind == "int" and not arg:
        return list(range(count))
    if kind == "bytes" and arg.isdigit() and int(arg) > 0:
        rng = random.Random(seed)
        return [rng.randbytes(int(arg)) for _ in range(count)]
    if kind == "tensor" and re.fullmatch(r"[1-9]\d*(x[1-9]\d*)*", arg):
        return _tensors([int(d) for d in arg.split("x")], count, seed)
    raise ConfigError(f"bad synthetic input {spec!r}: expected {SYNTHETIC_SPECS}")


def _tensors(shape: list[int], count: int, seed: int) -> list[Any]:
    try:
        import torch
    except ImportError as exc:
        raise ConfigError("tensor inputs need torch: pip install torch") from exc
    generator = torch.Generator().manual_seed(seed)
    return [
        torch.randint(0, 256, shape, dtype=torch.uint8, generator=generator) for _ in range(count)
    ]
