"""Export a seeded random ResNet-50 as resnet50.onnx, resnet50.pt and resnet50.pt2.

    python examples/resnet50/export.py [--out DIR] [--seed 0] [--force]

The weights are random (torchvision and pretrained weights are not needed), so the files
serve for wiring and benchmarks, not for accuracy. Every file keeps the batch dimension
dynamic. Existing files are kept unless --force: the weights depend only on --seed.
"""

from __future__ import annotations

import argparse
import logging
import time
import warnings
from pathlib import Path

from torchweir.kernels.models.export import FORMATS, export_model

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="output directory (%(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="weight seed (%(default)s)")
    parser.add_argument("--force", action="store_true", help="overwrite existing files")
    parser.add_argument(
        "--formats", default=",".join(FORMATS), help="comma-separated subset of %(default)s"
    )
    args = parser.parse_args(argv)
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    todo = [f for f in formats if args.force or not (args.out / f"resnet50.{f}").exists()]
    for fmt in sorted(set(formats) - set(todo)):
        print(f"{args.out / f'resnet50.{fmt}'}: exists, skipped (--force to overwrite)")
    if not todo:
        return 0

    import torch

    from torchweir.kernels.models.resnet import resnet50

    # Noise from inside torch 2.13's ONNX exporter, about torch itself and torchvision's
    # ops, which ResNet-50 does not use.
    warnings.filterwarnings("ignore", r"`isinstance\(treespec, LeafSpec\)`", FutureWarning)
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)

    started = time.perf_counter()
    model = resnet50(args.seed)
    print(f"built ResNet-50 (seed {args.seed}) in {time.perf_counter() - started:.1f} s")

    def report(path: Path, seconds: float) -> None:
        print(f"{path}: {path.stat().st_size / 2**20:.1f} MiB in {seconds:.1f} s")

    example = torch.zeros(2, 3, 224, 224)
    export_model(model, example, args.out, "resnet50", formats=todo, force=True, progress=report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
