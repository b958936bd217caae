"""Mean-bias diagnostics: activation statistics, hooks that collect linear inputs, reports, recipe fidelity."""

from .stats import activation_stats, quantization_damage

__all__ = ["activation_stats", "quantization_damage"]
