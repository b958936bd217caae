"""Quantized layers and model conversion.

``quantize_model(model, recipe)`` swaps nn.Linear layers for :class:`QuantLinear` in place;
``quantization_disabled(model)`` turns them off for evaluation; ``dequantize_model`` undoes the
swap.  Each quantized layer's stochastic-rounding state is its ``averis_rng`` buffer, saved and
restored with the model's state_dict; ``rng_kept(model)`` runs a block and puts every RNG and counter back;
``spread_streams(model, rank, world)`` gives each data-parallel rank its share of the draws.
"""

from .convert import (
    QuantizationReport,
    dequantize_model,
    get_report,
    plain_state_dict,
    quantization_disabled,
    quantize_model,
    quantized_layers,
    rng_kept,
    share_inputs,
    split_counts,
    split_fractions_by_site,
    spread_streams,
)
from .modules import QuantLinear, is_quantized
from .ops import QuantLinearFunction, quant_linear
from .state import LayerState

__all__ = ["QuantLinear", "QuantLinearFunction", "LayerState", "QuantizationReport", "quantize_model",
           "dequantize_model", "quantization_disabled", "get_report", "quantized_layers",
           "plain_state_dict", "rng_kept", "share_inputs", "spread_streams", "split_counts", "split_fractions_by_site",
           "quant_linear", "is_quantized"]
