"""Mean-bias diagnostics (method.md section 6) and recipe fidelity.

- ``activation_stats(X)``: statistics of one (tokens x channels) matrix.
- ``analyze_model(model, batches)``: the same for every linear layer's input (and output gradient).
- ``write_report`` / ``write_evolution``: JSON, CSV, markdown and plots (``averis analyze``).
- ``forward_anchor`` / ``recipe_fidelity``: loss and per-GEMM error of each recipe (``averis fidelity``).
- ``MeanBiasCallback``: records the statistics every N steps of training.
"""

from .analyze import analyze_model
from .callback import MeanBiasCallback, read_records
from .collect import LinearCollector, collect, linear_layers
from .fidelity import forward_anchor, recipe_fidelity
from .report import write_evolution, write_report
from .stats import activation_stats, quantization_damage
from .text import text_batches, token_batches

__all__ = ["activation_stats", "quantization_damage", "analyze_model", "collect", "LinearCollector",
           "linear_layers", "write_report", "write_evolution", "forward_anchor", "recipe_fidelity",
           "MeanBiasCallback", "read_records", "text_batches", "token_batches"]
