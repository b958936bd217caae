"""averis: stable FP4 (NVFP4 / MXFP4) training of LLMs in PyTorch.

Formats:   averis.quantize, averis.fake_quantize, averis.QuantizedTensor, averis.fp4_matmul
Backends:  averis.use_backend("auto" | "torch" | "triton"), averis.current_backend()
Models:    averis.quantize_model, averis.dequantize_model, averis.quantization_disabled,
           averis.load_pretrained (a Hugging Face model saved after quantize_model, quantized again)
"""

from .formats import QuantizedTensor, fp4_matmul
from .models.hf import load_pretrained
from .nn import dequantize_model, quantization_disabled, quantize_model
from .qgemm import current_backend, fake_quantize, quantize, use_backend

__version__ = "0.1.0"

__all__ = ["QuantizedTensor", "quantize", "fake_quantize", "fp4_matmul", "use_backend", "current_backend",
           "quantize_model", "dequantize_model", "quantization_disabled", "load_pretrained", "__version__"]
