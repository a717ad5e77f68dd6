"""OpenCV kernels under torchpipe's names: importing this package registers them.

``DecodeMat``, ``ResizeMat``, ``cvtColorMat`` (also ``CvtColorMat``), ``ResizePadMat``,
``LetterBoxMat``, ``CropMat``, ``Mat2Tensor`` and ``Tensor2Mat``. Each works item by
item (an :class:`~torchweir.kernels.base.ItemKernel`): a bad image fails only its own
request, with an :class:`~torchweir.errors.InputError` that names the problem. cv2
releases the GIL while it decodes and resizes, so a node's instances scale on cores.
"""

from torchweir.kernels.compose import register_fusion
from torchweir.kernels.cpu.decode import DecodeMat as DecodeMat
from torchweir.kernels.cpu.fused import fuse_resize_cvtcolor_tensor
from torchweir.kernels.cpu.ops import CropMat as CropMat
from torchweir.kernels.cpu.ops import CvtColorMat as CvtColorMat
from torchweir.kernels.cpu.ops import LetterBoxMat as LetterBoxMat
from torchweir.kernels.cpu.ops import ResizeMat as ResizeMat
from torchweir.kernels.cpu.ops import ResizePadMat as ResizePadMat
from torchweir.kernels.cpu.reference import preprocess_reference as preprocess_reference
from torchweir.kernels.cpu.tensor import Mat2Tensor as Mat2Tensor
from torchweir.kernels.cpu.tensor import Tensor2Mat as Tensor2Mat

#: torchpipe's spelling, as in ``S[DecodeMat,ResizeMat,cvtColorMat,Mat2Tensor]``.
cvtColorMat = CvtColorMat

register_fusion(fuse_resize_cvtcolor_tensor)

__all__ = [
    "CropMat",
    "CvtColorMat",
    "DecodeMat",
    "LetterBoxMat",
    "Mat2Tensor",
    "ResizeMat",
    "ResizePadMat",
    "Tensor2Mat",
    "cvtColorMat",
    "preprocess_reference",
]
