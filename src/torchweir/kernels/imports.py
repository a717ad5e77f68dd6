"""Import paths for backends: ``backend = "mypkg.kernels:MyKernel"``."""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["import_object"]


def import_object(path: str) -> Any:
    """The object at ``"package.module:attribute"``.

    Raises:
        ImportError: the module cannot be imported, or the path has no ``:``.
        AttributeError: the module has no such attribute.
    """
    module_name, sep, attribute = path.partition(":")
    if not sep or not module_name or not attribute:
        raise ImportError(f"expected 'package.module:Name', got {path!r}")
    module = importlib.import_module(module_name)
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise AttributeError(f"module {module_name!r} has no attribute {attribute!r}") from None
