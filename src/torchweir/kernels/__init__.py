"""Kernels: the compute, with no threads and no asyncio in it."""

from torchweir.kernels.base import FunctionKernel as FunctionKernel
from torchweir.kernels.base import InstanceContext as InstanceContext
from torchweir.kernels.base import Kernel as Kernel
from torchweir.kernels.base import kernel as kernel
from torchweir.kernels.compose import Identity as Identity
