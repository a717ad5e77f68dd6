"""Sample photos shipped with torchweir, for examples, tests and benchmarks.

Eight public-domain / CC0 JPEGs from scikit-image's sample data, at ImageNet-like sizes;
``images/README.md`` gives each one's source, licence and exact transformation.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["IMAGES_DIR", "sample_image_bytes", "sample_images"]

IMAGES_DIR = Path(__file__).resolve().parent / "images"


def sample_images() -> list[Path]:
    """The paths of the bundled JPEGs, sorted by name."""
    return sorted(IMAGES_DIR.glob("*.jpg"))


def sample_image_bytes() -> list[bytes]:
    """The encoded bytes of :func:`sample_images`, in the same order."""
    return [path.read_bytes() for path in sample_images()]
