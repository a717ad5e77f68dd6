"""The Python twin of ``resnet50_cpu.toml``: the same graph, built in code.

``python examples/resnet50/resnet50_graph.py`` classifies the bundled photos with it
(export the model first: ``python examples/resnet50/export.py``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torchweir as tw
from torchweir.data import sample_images

HERE = Path(__file__).resolve().parent
MEAN = "123.675, 116.28, 103.53"
STD = "58.395, 57.120, 57.375"


def build(model: Path = HERE / "resnet50.onnx") -> tw.Graph:
    """The seed's three nodes: decode -> resize/cvtColor/to-tensor -> ResNet-50."""
    shared = {"batching_timeout": 5, "instance_num": 4, "precision": "fp16"}
    g = tw.Graph()
    decoder = g.node("cpu_decoder", "Torch[Sequential[DecodeMat]]", **shared)
    posdecoder = g.node(
        "cpu_posdecoder",
        "Torch[Sequential[ResizeMat,cvtColorMat, Mat2Tensor]]",
        resize_h=224,
        resize_w=224,
        color="rgb",
        **shared,
    )
    resnet = g.node(
        "resnet50",
        "Torch[OnnxModel]",
        min="1x3x224x224",
        max="4x3x224x224",
        model=str(model.resolve()),
        mean=MEAN,
        std=STD,
        **shared,
    )
    decoder >> posdecoder >> resnet
    return g


def main() -> int:
    model = HERE / "resnet50.onnx"
    if not model.is_file():
        print(f"{model} is missing; run: python examples/resnet50/export.py", file=sys.stderr)
        return 1
    with tw.pipe(build(model)) as pipe:
        requests = [{"data": path.read_bytes()} for path in sample_images()]
        pipe(requests)
    for path, request in zip(sample_images(), requests, strict=True):
        logits = request["result"]
        print(f"{path.name:<28} class {int(logits.argmax()):>4}  logit {float(logits.max()):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
