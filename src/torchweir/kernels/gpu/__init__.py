"""torch/CUDA kernels: nvJPEG decode, resize, colour, crop, pad, device moves.

They need a CUDA GPU at run time (their nodes fail to build with a clear error without
one); importing this package needs neither torch nor torchvision.
``S[DecodeTensor,ResizeTensor]`` runs as one fused step (:mod:`.fused`).
"""

from torchweir.kernels.compose import register_fusion
from torchweir.kernels.gpu.decode import DecodeTensor as DecodeTensor
from torchweir.kernels.gpu.fused import fuse_decode_resize
from torchweir.kernels.gpu.ops import CpuTensor as CpuTensor
from torchweir.kernels.gpu.ops import CropTensor as CropTensor
from torchweir.kernels.gpu.ops import GpuTensor as GpuTensor
from torchweir.kernels.gpu.ops import PadTensor as PadTensor
from torchweir.kernels.gpu.ops import ResizeTensor as ResizeTensor
from torchweir.kernels.gpu.ops import cvtColorTensor as cvtColorTensor

register_fusion(fuse_decode_resize)
