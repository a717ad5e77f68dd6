"""ResNet-50 in plain torch, with seeded random weights, for tests and benchmarks.

torchvision is not installed everywhere torchweir runs, and serving benchmarks need the
network's cost, not its accuracy. The layer structure and parameter names match
torchvision's ``resnet50`` (Bottleneck blocks ``[3, 4, 6, 3]``, 1000 classes), so its
pretrained ``state_dict`` loads into :func:`resnet50` unchanged.

Random weights alone make a poor stand-in: without trained batch-norm statistics the
activations shrink or grow layer after layer, and the logits barely depend on the image.
So after a seeded Kaiming initialisation the batch-norm statistics are estimated from
one pass over seeded random images: every layer then sees unit-scale activations, and
different images give clearly different, finite logits, as a trained network's do.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from torchweir.kernels.models.export import export_model

__all__ = ["Bottleneck", "ResNet", "export_resnet50", "resnet50", "resnet_tiny"]


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (with the stride, as torchvision's "ResNet v1.5"), 1x1 expand."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        out_channels = planes * self.expansion
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or inplanes != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        result: torch.Tensor = self.relu(out + identity)
        return result


class ResNet(nn.Module):
    """A ResNet of :class:`Bottleneck` blocks, torchvision's layout and names.

    Args:
        layers: blocks per stage; ``[3, 4, 6, 3]`` is ResNet-50.
        width: channels of the stem and the first stage (64 in ResNet-50).
        num_classes: outputs of the final linear layer.
    """

    def __init__(self, layers: Sequence[int], *, width: int = 64, num_classes: int = 1000) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        inplanes = width
        stages = []
        for i, blocks in enumerate(layers):
            planes = width * 2**i
            stride = 1 if i == 0 else 2
            stage = [Bottleneck(inplanes, planes, stride)]
            inplanes = planes * Bottleneck.expansion
            stage += [Bottleneck(inplanes, planes) for _ in range(blocks - 1)]
            stages.append(nn.Sequential(*stage))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(inplanes, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        logits: torch.Tensor = self.fc(torch.flatten(self.avgpool(x), 1))
        return logits


def resnet50(seed: int = 0) -> ResNet:
    """ResNet-50 with random weights from ``seed``, in eval mode."""
    return _seeded(ResNet([3, 4, 6, 3]), seed, image_size=112)


def resnet_tiny(seed: int = 0, num_classes: int = 10) -> ResNet:
    """A small ResNet (one block per stage, 8 stem channels) with the same interface."""
    return _seeded(ResNet([1, 1, 1, 1], width=8, num_classes=num_classes), seed, image_size=32)


def export_resnet50(
    out_dir: str | Path,
    seed: int = 0,
    *,
    formats: Sequence[str] = ("onnx", "pt", "pt2"),
    force: bool = False,
) -> dict[str, Path]:
    """Write ``resnet50.onnx``/``.pt``/``.pt2`` (batch dimension dynamic) into ``out_dir``.

    Files that exist are kept unless ``force``: the weights depend only on ``seed``, so a
    cache directory can be shared between runs. See :func:`export_model`.
    """
    paths = {fmt: Path(out_dir) / f"resnet50.{fmt}" for fmt in formats}
    if not force and all(path.exists() for path in paths.values()):
        return paths  # skip building the network at all
    example = torch.zeros(2, 3, 224, 224)
    return export_model(resnet50(seed), example, out_dir, "resnet50", formats=formats, force=force)


#: Scale of each block's last batch norm. Near-identity blocks keep a deep random network
#: well conditioned (as "zero-init residual" does), but not exactly zero, which would let
#: a graph optimiser prove the residual branches dead and skip their cost.
RESIDUAL_SCALE = 0.1


def _seeded(model: ResNet, seed: int, image_size: int) -> ResNet:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(
                    module.weight, mode="fan_out", nonlinearity="relu", generator=generator
                )
            elif isinstance(module, nn.Linear):
                bound = module.in_features**-0.5
                nn.init.uniform_(module.weight, -bound, bound, generator=generator)
                nn.init.uniform_(module.bias, -bound, bound, generator=generator)
            elif isinstance(module, Bottleneck):
                nn.init.constant_(module.bn3.weight, RESIDUAL_SCALE)
        _calibrate(model, _images(8, image_size, generator))
    return model.eval()


def _images(n: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """Normalised stand-ins for photos: noise at coarse to fine scales, from large smooth
    regions to pixel noise."""
    scales = [s for s in (2, 4, 8, 16, 32) if s < size] + [size]
    images = []
    for i in range(n):
        cells = scales[i % len(scales)]
        image = torch.randn(1, 3, cells, cells, generator=generator)
        if cells < size:
            image = nn.functional.interpolate(image, size=size, mode="bilinear")
        images.append(image)
    return torch.cat(images)


def _calibrate(model: ResNet, images: torch.Tensor) -> None:
    """Fit batch-norm statistics and the classifier's scale to one pass over ``images``.

    Each batch norm gets the exact mean and variance of its input over ``images``. Then
    the classifier is centred and scaled so that its logits vary from image to image with
    a standard deviation of about 2, as a trained network's do, instead of being
    dominated by a part common to all images.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # a cumulative average: one pass gives the exact statistics
    model.train()
    model(images)
    for norm in norms:
        norm.momentum = 0.1
    model.eval()
    logits = model(images)
    scale = 2.0 / float((logits - logits.mean(0)).std().clamp_min(1e-6))
    model.fc.bias.sub_(logits.mean(0)).mul_(scale)
    model.fc.weight.mul_(scale)
