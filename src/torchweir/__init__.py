"""torchweir: an asyncio, actor-style dataflow runtime for serving PyTorch models.

Every public name is re-exported here and nowhere else (``tests/test_exports.py`` keeps
the list honest); submodules are implementation detail unless documented.
"""

from torchweir import bench as bench
from torchweir import errors as errors
from torchweir import kernels as kernels
from torchweir.actors.cuda import widen_hardware_queues as _widen_hardware_queues
from torchweir.errors import ConfigError as ConfigError
from torchweir.errors import DeadlineExceeded as DeadlineExceeded
from torchweir.errors import InputError as InputError
from torchweir.errors import KernelError as KernelError
from torchweir.errors import Overloaded as Overloaded
from torchweir.errors import RuntimeClosed as RuntimeClosed
from torchweir.errors import SubmitError as SubmitError
from torchweir.errors import TorchweirError as TorchweirError
from torchweir.errors import UnknownNode as UnknownNode
from torchweir.graphs.builder import Graph as Graph
from torchweir.graphs.spec import GraphSpec as GraphSpec
from torchweir.graphs.spec import NodeSpec as NodeSpec
from torchweir.kernels.base import InstanceContext as InstanceContext
from torchweir.kernels.base import Kernel as Kernel
from torchweir.kernels.base import kernel as kernel
from torchweir.kernels.filters import register_filter as register_filter
from torchweir.kernels.registry import register_kernel as register_kernel
from torchweir.runtime.loop import run as run
from torchweir.runtime.pipe import Pipe as Pipe
from torchweir.runtime.pipe import pipe as pipe
from torchweir.runtime.runtime import Runtime as Runtime
from torchweir.runtime.runtime import RuntimeState as RuntimeState
from torchweir.runtime.runtime import RuntimeStatistics as RuntimeStatistics

_widen_hardware_queues()  # before any CUDA context exists: see torchweir.actors.cuda

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "DeadlineExceeded",
    "Graph",
    "GraphSpec",
    "InputError",
    "InstanceContext",
    "Kernel",
    "KernelError",
    "NodeSpec",
    "Overloaded",
    "Pipe",
    "Runtime",
    "RuntimeClosed",
    "RuntimeState",
    "RuntimeStatistics",
    "SubmitError",
    "TorchweirError",
    "UnknownNode",
    "bench",
    "errors",
    "kernel",
    "kernels",
    "pipe",
    "register_filter",
    "register_kernel",
    "run",
]
