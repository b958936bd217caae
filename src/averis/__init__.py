"""averis: stable FP4 (NVFP4 / MXFP4) training of LLMs in PyTorch.

Formats:   averis.quantize, averis.fake_quantize, averis.QuantizedTensor, averis.fp4_matmul
"""

from .formats import QuantizedTensor, fake_quantize, fp4_matmul, quantize
from .nn import dequantize_model, quantization_disabled, quantize_model

__version__ = "0.1.0"

__all__ = ["QuantizedTensor", "quantize", "fake_quantize", "fp4_matmul", "quantize_model", "dequantize_model",
           "quantization_disabled", "__version__"]
