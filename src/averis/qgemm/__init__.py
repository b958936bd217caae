"""One quantized-GEMM path: the quantized operand, the GEMM, the routed quantization ops and the one switch
that picks their backend.

``prepare(source, spec, recipe, ...) -> QOperand`` transforms and quantizes one operand (statistics of
its source in a ``SourceStats``, computed once per layer call); ``qgemm(a, b, out_dtype)`` multiplies two
of them with the tensor scales and the Averis mean terms in the epilogue (backends "emulated" and
"exact"; see gemm.py and docs/architecture.md for where a grouped or native FP4 GEMM plugs in).

``use_backend("auto" | "torch" | "triton")`` (also a context manager) and ``current_backend()``; every
function here asks ``backend.resolve`` whether the Triton kernels (averis.kernels) or the PyTorch
reference (averis.formats, averis.transforms) runs, and both give the same bits.  A ``backend=``
argument overrides the switch for one call.

Layers: averis.formats < averis.transforms, averis.kernels < averis.qgemm < averis.nn < the rest; this
package is the only one that imports both the reference and the kernels.
"""

from .backend import BACKENDS, current_backend, resolve, use_backend
from .fused import applies as fused_applies
from .fused import emits_token_sum, fused_operand
from .gemm import GEMM_BACKENDS, qgemm
from .lowrank import lowrank_split, randomized_svd
from .operand import LayerStats, QOperand, SourceStats, prepare, shares_amax
from .ops import (
    column_stats,
    fake_quantize,
    fake_quantize_dual,
    fake_quantize_hadamard,
    fake_quantize_residual,
    fake_quantize_unscaled,
    mean_split,
    mean_terms,
    quantize,
    quantize_mean,
    split_decision,
    tensor_amax,
)

__all__ = ["QOperand", "SourceStats", "LayerStats", "prepare", "shares_amax", "qgemm", "GEMM_BACKENDS",
           "fake_quantize_unscaled", "use_backend", "current_backend", "resolve", "BACKENDS", "quantize",
           "fake_quantize", "tensor_amax",
           "column_stats", "mean_split", "mean_terms", "split_decision", "quantize_mean", "fake_quantize_residual",
           "fake_quantize_hadamard", "fake_quantize_dual", "fused_operand", "fused_applies", "emits_token_sum",
           "randomized_svd", "lowrank_split"]
