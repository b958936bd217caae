"""Operand transforms applied before FP4 quantization: mean split, Hadamard, low-rank split.

Each is a small function callable on its own, the PyTorch reference (averis.qgemm routes them to the
Triton kernels, which may fuse them with the quantization): ``mean_split(x) -> (mu, residual)`` with
its fixed-order ``column_stats``, ``quantize_mean``, ``hadamard16(x, signs, axis)`` and its inverse,
``random_signs(seed)``, ``randomized_svd`` / ``lowrank_split``.  Imports only averis.formats.
"""

from .hadamard import hadamard16, hadamard16_inverse, hadamard_matrix, pad_to_multiple, random_signs
from .lowrank import lowrank_split, randomized_svd
from .mean import ColumnStats, column_stats, mean_split, quantize_mean

__all__ = ["mean_split", "quantize_mean", "column_stats", "ColumnStats", "hadamard16", "hadamard16_inverse",
           "hadamard_matrix", "random_signs", "pad_to_multiple", "randomized_svd", "lowrank_split"]
