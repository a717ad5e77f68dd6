"""Model kernels: ``TorchModel`` and ``OnnxModel``, registered under those TOML names.

Importing this package registers the names without importing torch or onnxruntime;
each is imported when the first instance of a node that uses it is set up. The
networks and export helpers in :mod:`torchweir.kernels.models.resnet` and
:mod:`torchweir.kernels.models.export` import torch and are imported on demand.
"""

from torchweir.kernels.models.onnx_model import OnnxModel as OnnxModel
from torchweir.kernels.models.torch_model import TorchModel as TorchModel

__all__ = ["OnnxModel", "TorchModel"]
