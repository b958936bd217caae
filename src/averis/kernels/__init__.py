"""Triton kernels for FP4 quantization; the PyTorch reference in averis.formats is the source of truth.

``available(x)`` says whether the Triton path can run for tensor ``x``: Triton must
import and the tensor must be on CUDA, or TRITON_INTERPRET=1 must be set (CPU tests).
"""

from __future__ import annotations

import importlib.util
import os

import torch


def triton_installed() -> bool:
    return importlib.util.find_spec("triton") is not None


def kernels_present() -> bool:
    return importlib.util.find_spec("averis.kernels.dispatch") is not None


def available(x: torch.Tensor) -> bool:
    if not (triton_installed() and kernels_present()):
        return False
    return x.is_cuda or os.environ.get("TRITON_INTERPRET") == "1"
