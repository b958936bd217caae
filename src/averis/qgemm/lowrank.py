"""The Metis low-rank split with its r x r SVD routed: the one-sided Jacobi Triton kernel
(averis.kernels.jacobi, one launch, no host sync) or ``torch.linalg.svd`` (cuSOLVER on CUDA, whose
error check synchronizes the device with the host).

The two do not give the same bits, so the choice is explicit: ``small_svd`` here, or the switch's
(``averis.use_backend(..., small_svd=)``): "auto" takes Jacobi where the backend resolves to Triton and
r <= 32, else torch.linalg.svd; "jacobi" / "svd" force one.  If the Triton kernel fails to compile
under "auto", a warning says so and torch.linalg.svd is used from then on.  The sketch's Gaussian noise
is routed too (``ops.normal_noise``: its uniform draws from one kernel, the same bits).
"""

from __future__ import annotations

import functools
import warnings

import torch

from ..transforms import lowrank as _lowrank
from .backend import check_small_svd, resolve, small_svd_setting
from .ops import normal_noise

JACOBI_MAX_RANK = 32        # the Triton kernel holds the r x r matrix in registers
_jacobi_broken = False       # set if the Triton kernel failed to compile: fall back to torch.linalg.svd


def jacobi_broken() -> bool:
    """Whether the Triton Jacobi kernel failed once under "auto" (torch.linalg.svd is used since)."""
    return _jacobi_broken


def small_svd_function(method: str | None = None, backend: str | None = None):
    """The r x r SVD ``a -> (Us, Ws)`` that ``method`` (default: the switch's) names, for
    averis.transforms.lowrank's ``small_svd`` argument."""
    method = check_small_svd(small_svd_setting() if method is None else method)

    def svd(a: torch.Tensor):
        global _jacobi_broken
        use, auto = method, method == "auto"
        if auto:
            use = "jacobi" if not _jacobi_broken and a.shape[0] <= JACOBI_MAX_RANK and resolve(a, backend) else "svd"
        if use == "jacobi":
            try:
                from ..kernels.jacobi import jacobi_svd

                c, z = jacobi_svd(a)                          # a z = c, the columns of c orthogonal
            except Exception as e:
                if not auto:
                    raise
                _jacobi_broken = True                         # a Triton compile failure must not stop training
                warnings.warn(f"averis: Triton Jacobi SVD unavailable ({type(e).__name__}: {e}); "
                              "falling back to torch.linalg.svd (one host sync per call)", stacklevel=2)
            else:
                return _lowrank.rotation_factors(c, z)
        return _lowrank.torch_small_svd(a)

    return svd


def randomized_svd(x: torch.Tensor, rank: int, power_iters: int = 2, generator: torch.Generator | None = None, *,
                   small_svd: str | None = None, backend: str | None = None):
    """averis.transforms.randomized_svd with the routed r x r SVD (see the module docstring)."""
    return _lowrank.randomized_svd(x, rank, power_iters, generator, small_svd_function(small_svd, backend),
                                   functools.partial(normal_noise, backend=backend))


def lowrank_split(x: torch.Tensor, rank: int, power_iters: int = 2, generator: torch.Generator | None = None, *,
                  small_svd: str | None = None, backend: str | None = None):
    """averis.transforms.lowrank_split with the routed r x r SVD (see the module docstring)."""
    return _lowrank.lowrank_split(x, rank, power_iters, generator, small_svd_function(small_svd, backend),
                                  functools.partial(normal_noise, backend=backend))
