"""The one backend switch: which implementation of the quantization ops runs.

``use_backend(name)`` sets it for the whole process, and used as a context manager puts the previous
setting back on exit::

    averis.use_backend("torch")            # from now on
    with averis.use_backend("triton"):     # for this block
        ...

- "auto" (the default): the Triton kernels for CUDA tensors when Triton imports, else the PyTorch
  reference;
- "torch": the PyTorch reference everywhere (averis.formats, averis.transforms);
- "triton": the Triton kernels everywhere (a RuntimeError where they cannot run: a CPU tensor
  without TRITON_INTERPRET=1, or no Triton).

Both give the same quantized values bit for bit (the Metis SVD below excepted); only the speed
differs.  A ``backend=`` argument of a routed function
overrides the switch for that call.  Every routed function (averis.qgemm) asks ``resolve`` and nothing
else decides.

The setting is one process-wide value, not a context variable: the autograd engine runs the backward
of CUDA tensors on its own worker threads, which do not see a context variable set by the thread that
called ``backward()`` (pytorch/pytorch PR 191777), so a per-context setting would silently put the
backward pass on the default backend.  Setting and restoring are atomic; threads that want different
backends at the same time are not supported.

The decision is made in Python when a routed function runs, without a host sync: inside CUDA-graph
capture it is made once, at capture, and the graph replays the kernels it captured.  Under
torch.compile, code that Dynamo traces reads the switch at trace time (and guards on it: switching
recompiles).  The quantized layers are custom ops, opaque to the compiler: they read the switch when
they run, but the output layouts their fake implementations declared are fixed when the graph is
traced: a compiled model is meant to run with the backend it was traced with.  Switch before
compiling, or call ``torch._dynamo.reset()`` after switching.

Two more settings ride on the same switch (a keyword left out keeps its current value):

- ``fused`` (default True): where the backend resolves to Triton, a QuantLinear operand's mean split /
  RHT and quantization run as one fused kernel (``averis.qgemm.fused_operand``); False runs each op on
  its own kernel.  Same bits for the operands; the fused kernels write the wgrad operands tokens-major,
  so a GEMM that reads them may round differently where its result depends on the layout (CPU BLAS).
- ``small_svd``: the r x r SVD of the Metis low-rank split, the one choice here that changes bits:
  "auto" (default) takes the Triton Jacobi kernel where the backend resolves to Triton (rank <= 32),
  else ``torch.linalg.svd``; "jacobi" or "svd" force one (e.g. to compare two backends on one SVD).
"""

from __future__ import annotations

import threading

import torch

from .. import kernels

BACKENDS = ("auto", "torch", "triton")
SMALL_SVDS = ("auto", "jacobi", "svd")

_lock = threading.Lock()
_backend = "auto"
_fused = True
_small_svd = "auto"
_exact_gemm = False  # measured: +49% on the H200 bench step (docs/architecture.md)


def check_backend(name: str) -> str:
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}: use 'auto', 'torch' or 'triton'")
    return name


def check_small_svd(method: str) -> str:
    if method not in SMALL_SVDS:
        raise ValueError(f"small_svd must be one of {SMALL_SVDS}, not {method!r}")
    return method


class use_backend:  # noqa: N801 - a function to the caller, a class only to be a context manager too
    """Route the quantization ops to ``name`` ("auto", "torch" or "triton") from now on; as a context
    manager, until the block ends (then the settings before this call are back).  ``fused``: use the
    fused operand kernels; ``small_svd``: the Metis r x r SVD ("auto", "jacobi" or "svd"); ``exact_gemm``:
    the quantized layers' GEMMs apply the NVFP4 tensor scales to the FP32 accumulator, as FP4 tensor cores
    do (True), or fold them into the BF16 operands (False, the default: each value rounded once more, about
    half of the BF16 outputs differ from the hardware's; no FP32 epilogue, faster on the GPU); None keeps
    the current value.
    See the module docstring."""

    def __init__(self, name: str, *, fused: bool | None = None, small_svd: str | None = None,
                 exact_gemm: bool | None = None):
        global _backend, _fused, _small_svd, _exact_gemm
        check_backend(name)
        if small_svd is not None:
            check_small_svd(small_svd)
        with _lock:
            self._previous = (_backend, _fused, _small_svd, _exact_gemm)
            _backend = name
            _fused = _fused if fused is None else bool(fused)
            _small_svd = _small_svd if small_svd is None else small_svd
            _exact_gemm = _exact_gemm if exact_gemm is None else bool(exact_gemm)

    def __enter__(self) -> use_backend:
        return self

    def __exit__(self, *exc) -> None:
        global _backend, _fused, _small_svd, _exact_gemm
        with _lock:
            _backend, _fused, _small_svd, _exact_gemm = self._previous

    def __repr__(self) -> str:
        return (f"use_backend({_backend!r}, fused={_fused!r}, small_svd={_small_svd!r}, "
                f"exact_gemm={_exact_gemm!r})")


def current_backend() -> str:
    """The backend the switch names now: "auto", "torch" or "triton"."""
    return _backend


def fused_setting() -> bool:
    """Whether the fused operand kernels may run (where the backend resolves to Triton)."""
    return _fused


def exact_gemm_setting() -> bool:
    """Whether the quantized operands keep their NVFP4 tensor scale apart for the GEMM's epilogue."""
    return _exact_gemm


def small_svd_setting() -> str:
    """The switch's r x r SVD method for the Metis split: "auto", "jacobi" or "svd"."""
    return _small_svd


def resolve(x: torch.Tensor, backend: str | None = None) -> bool:
    """Whether the Triton kernels run for tensor ``x``: ``backend`` (a call's own argument) or, if None,
    the switch.  Reads only x's device, so it also answers for a fake (traced) tensor."""
    name = _backend if backend is None else check_backend(backend)
    if name == "torch":
        return False
    if name == "triton":
        if not kernels.available(x):
            raise RuntimeError("backend='triton' needs Triton and a CUDA tensor (or TRITON_INTERPRET=1)")
        return True
    return x.is_cuda and kernels.available(x)


def dispatch():
    """The Triton launchers (averis.kernels.dispatch), imported when first needed: Triton is optional."""
    from ..kernels import dispatch as launchers

    return launchers
