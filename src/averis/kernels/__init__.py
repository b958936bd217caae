"""Triton kernels for FP4 quantization; the PyTorch reference in averis.formats / averis.transforms is the
source of truth, and the kernels reproduce it bit for bit.

``dispatch`` holds the launchers (``quantize``, ``fake_quantize``, ``amax``, ``column_stats``, the fused
``fake_quantize_residual`` / ``_hadamard`` / ``_dual``), ``jacobi`` the r x r SVD of the Metis split.
Which implementation runs is chosen in one place, ``averis.qgemm`` (``averis.use_backend``); this package
imports only averis.formats.

``available(x)`` says whether the Triton path can run for tensor ``x``: Triton must
import and the tensor must be on CUDA, or TRITON_INTERPRET=1 must be set (CPU tests).
"""

from __future__ import annotations

import importlib.util
import os

import torch

# Looked up once, at import: torch.compile cannot trace importlib (a routed call inside a compiled
# function asks available() while it is traced).
_TRITON_INSTALLED = importlib.util.find_spec("triton") is not None
_KERNELS_PRESENT = importlib.util.find_spec("averis.kernels.dispatch") is not None


def triton_installed() -> bool:
    return _TRITON_INSTALLED


def kernels_present() -> bool:
    return _KERNELS_PRESENT


def available(x: torch.Tensor) -> bool:
    if not (_TRITON_INSTALLED and _KERNELS_PRESENT):
        return False
    return x.is_cuda or os.environ.get("TRITON_INTERPRET") == "1"
