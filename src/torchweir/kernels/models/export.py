"""Writing a network as ONNX, TorchScript and ``torch.export`` files, batch dimension free.

The three formats are what :class:`~torchweir.kernels.models.TorchModel` and
:class:`~torchweir.kernels.models.OnnxModel` load. Each file is written under a temporary
name and renamed when complete, so an interrupted export never leaves a file that a later
run would mistake for a finished one and skip.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import nn

__all__ = ["FORMATS", "export_model"]

#: File suffixes written by :func:`export_model`: ONNX, TorchScript, torch.export.
FORMATS = ("onnx", "pt", "pt2")


def export_model(
    module: nn.Module,
    example: torch.Tensor,
    out_dir: str | Path,
    stem: str,
    *,
    formats: Sequence[str] = FORMATS,
    force: bool = False,
    max_batch: int = 1024,
    progress: Callable[[Path, float], None] | None = None,
) -> dict[str, Path]:
    """Write ``<stem>.onnx``, ``<stem>.pt`` (TorchScript) and ``<stem>.pt2`` into ``out_dir``.

    ONNX goes through the ``torch.export``-based exporter (the TorchScript-based one is
    deprecated), with the weights inside the file. All three keep the batch dimension
    dynamic, from 1 to ``max_batch``.

    Args:
        module: the network; it is put in eval mode.
        example: an example batch of at least 2 items: ``torch.export`` specialises a
            batch dimension of 1 into a constant.
        out_dir: created if missing.
        stem: the files' name without suffix.
        formats: which of :data:`FORMATS` to write.
        force: overwrite existing files; otherwise they are kept.
        max_batch: the largest batch the exported programs accept.
        progress: called with each file written and the seconds it took.

    Returns:
        Each requested format's path, written now or found in place.

    Raises:
        ValueError: an unknown format, or an example batch of fewer than 2 items.
    """
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown:
        raise ValueError(f"unknown export formats {unknown}; expected some of {FORMATS}")
    if example.dim() == 0 or example.shape[0] < 2:
        raise ValueError(
            f"the example batch needs at least 2 items, got shape {tuple(example.shape)}"
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    exporter = _Exporter(module.eval(), example, max_batch)
    writers: dict[str, Callable[[Path], None]] = {
        "onnx": exporter.onnx,
        "pt": exporter.torchscript,
        "pt2": exporter.program,
    }
    paths = {}
    for fmt in formats:
        path = paths[fmt] = out / f"{stem}.{fmt}"
        if path.exists() and not force:
            continue
        partial = out / f".{stem}.{os.getpid()}.partial.{fmt}"  # keeps the suffix: .pt2 needs it
        started = time.perf_counter()
        try:
            writers[fmt](partial)
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)
        if progress is not None:
            progress(path, time.perf_counter() - started)
    return paths


class _Exporter:
    """Exports one module, tracing it with ``torch.export`` at most once for all formats."""

    def __init__(self, module: nn.Module, example: torch.Tensor, max_batch: int) -> None:
        self.module = module
        self.example = example
        self.batch = torch.export.Dim("batch", min=1, max=max_batch)
        self._program: torch.export.ExportedProgram | None = None

    def exported(self) -> torch.export.ExportedProgram:
        if self._program is None:
            self._program = torch.export.export(
                self.module, (self.example,), dynamic_shapes=({0: self.batch},)
            )
        return self._program

    def program(self, path: Path) -> None:
        torch.export.save(self.exported(), path)

    def torchscript(self, path: Path) -> None:
        traced = torch.jit.trace(  # type: ignore[no-untyped-call]
            self.module, self.example, check_trace=False, _store_inputs=False
        )
        traced.save(str(path))

    def onnx(self, path: Path) -> None:
        torch.onnx.export(
            self.exported(),
            (self.example,),
            path,
            dynamo=True,
            external_data=False,
            input_names=["input"],
            output_names=["output"],
            verbose=False,
        )
