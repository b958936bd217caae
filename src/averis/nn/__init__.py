"""Quantized layers and model conversion.

``quantize_model(model, recipe)`` swaps nn.Linear layers for :class:`QuantLinear` in place;
``quantization_disabled(model)`` turns them off for evaluation; ``dequantize_model`` undoes the
swap; ``rng_state`` / ``set_rng_state`` save and restore the stochastic-rounding generators
(``generators`` lists them, e.g. to register them with a CUDA graph).
"""

from .convert import (
    QuantizationReport,
    dequantize_model,
    generators,
    get_report,
    quantization_disabled,
    quantize_model,
    quantized_layers,
    rng_kept,
    rng_state,
    set_rng_state,
)
from .modules import QuantLinear, is_quantized
from .ops import QuantLinearFunction, quant_linear
from .state import LayerState

__all__ = ["QuantLinear", "QuantLinearFunction", "LayerState", "QuantizationReport", "quantize_model",
           "dequantize_model", "quantization_disabled", "get_report", "quantized_layers", "rng_state",
           "set_rng_state", "rng_kept", "generators", "quant_linear", "is_quantized"]
