"""Kernels: the compute, with no threads and no asyncio in it.

Importing this package registers every built-in backend under torchpipe's names (the
OpenCV, GPU and model kernels); torch, torchvision, onnxruntime and TensorRT are imported
only when a node that needs them is built or set up.
"""

from torchweir.kernels import cpu as cpu
from torchweir.kernels import filters as filters
from torchweir.kernels import gpu as gpu
from torchweir.kernels import models as models
from torchweir.kernels.base import FunctionKernel as FunctionKernel
from torchweir.kernels.base import InstanceContext as InstanceContext
from torchweir.kernels.base import ItemKernel as ItemKernel
from torchweir.kernels.base import Kernel as Kernel
from torchweir.kernels.base import kernel as kernel
from torchweir.kernels.compose import Identity as Identity
from torchweir.kernels.compose import Sequential as Sequential
from torchweir.kernels.filters import Status as Status
from torchweir.kernels.filters import register_filter as register_filter
from torchweir.kernels.models import OnnxModel as OnnxModel
from torchweir.kernels.models import TorchModel as TorchModel
from torchweir.kernels.models.tensorrt import TensorrtTensor as TensorrtTensor
