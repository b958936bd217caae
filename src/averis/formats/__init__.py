"""Exact FP4 number formats: E2M1 elements, NVFP4 and MXFP4 block scaling, packing, FP4 GEMMs.

The PyTorch reference; it imports nothing else of averis.  ``averis.quantize`` / ``averis.fake_quantize``
(averis.qgemm) run it or its Triton twin, as ``averis.use_backend`` says.
"""

from .e2m1 import as_float4x2, decode, encode, pack, unpack
from .gemm import fp4_matmul
from .quantize import QuantizedTensor, fake_quantize, quantize
from .spec import FormatSpec, make_spec

__all__ = ["QuantizedTensor", "FormatSpec", "quantize", "fake_quantize", "fp4_matmul", "make_spec",
           "encode", "decode", "pack", "unpack", "as_float4x2"]
