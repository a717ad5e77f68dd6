"""Keeping ``torch.compile`` artifacts on disk, so a restart does not compile again.

Compiling ResNet-50 with ``max-autotune`` costs minutes per batch size. Inductor can
export everything it produced (FX graphs, autotuning results, kernels) as one blob
(``torch.compiler.save_cache_artifacts``) and load it back before compiling; the compile
then replays from the cache. The blob is stored under a name derived from everything it
depends on (model weights, GPU, torch version, mode, precision, buckets, input shape),
the way ``model::cache`` keys a TensorRT engine.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

__all__ = ["cache_file", "load_compiled", "model_digest", "save_compiled"]


def default_dir() -> Path:
    return Path(os.environ.get("TORCHWEIR_CACHE", Path.home() / ".cache" / "torchweir")) / "compile"


def cache_file(key: str, folder: str | Path = "") -> Path:
    """The blob for ``key`` (a sidecar ``.json`` holds the readable key)."""
    digest = hashlib.sha256(key.encode()).hexdigest()[:24]
    return Path(folder or default_dir()) / f"{digest}.bin"


def model_digest(model: Any) -> str:
    """A content hash of a model file, or of a module's class and weights."""
    hasher = hashlib.sha256()
    if isinstance(model, (str, Path)):
        with open(model, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                hasher.update(block)
        return hasher.hexdigest()
    hasher.update(type(model).__qualname__.encode())
    for name, tensor in model.state_dict().items():
        hasher.update(name.encode())
        hasher.update(tensor.detach().cpu().contiguous().view(-1).view(dtype=_byte()).numpy())
    return hasher.hexdigest()


def load_compiled(key: str, folder: str | Path = "") -> bool:
    """Load the artifacts for ``key`` into inductor's caches; ``False`` if none yet."""
    import torch

    path = cache_file(key, folder)
    if not path.is_file():
        return False
    torch.compiler.load_cache_artifacts(path.read_bytes())
    return True


def save_compiled(key: str, folder: str | Path = "") -> Path | None:
    """Store what inductor compiled so far under ``key`` (once; later calls keep it)."""
    import torch

    path = cache_file(key, folder)
    if path.is_file():
        return path
    saved = torch.compiler.save_cache_artifacts()
    if saved is None:
        return None
    blob, _info = saved
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_bytes(blob)
    temporary.replace(path)
    path.with_suffix(".json").write_text(json.dumps({"key": key}, indent=2))
    return path


def _byte() -> Any:
    import torch

    return torch.uint8
