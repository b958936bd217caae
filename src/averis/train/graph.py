"""CUDA-graph capture of a training step's forward and backward passes (``train.cuda_graph``).

An emulated FP4 step launches many small kernels per linear layer (tensor amax, quantize, column
statistics, casts, rank-one terms, SR seed draws, for six operands); for a small model the host cannot
issue them as fast as the GPU runs them, and the step is bound by Python and launch overhead.  Every
op on that path is free of host synchronisation, so the forward and backward passes of all the
micro-batches of one optimizer step can be captured once in a CUDA graph and replayed each step.

Under DDP (several processes, NCCL) the capture holds the gradient all-reduces too: the gradient
accumulators of DDP's reducer are made on the capture stream (distributed.wrap), ``DDP_WARMUP`` eager
iterations run first, and each micro-batch runs inside the same ``sync`` context as an eager step (no_sync
on all but the last), so the capture records the same pattern every replay repeats.

What stays eager: the optimizer, gradient clipping and the divergence check, so the learning-rate
schedule and "stop before a bad update" are unchanged.  The gradients live in the graph's memory
pool; every replay overwrites them (no zero_grad).

Exactness: the quantizers' random state is each layer's ``averis_rng`` counter buffer, which every
training forward advances in place, so a replay advances it exactly as an eager step would (nothing
to register); the counters and the default CUDA generator are restored after the warm-up passes.
A graphed run therefore equals the eager run bit for bit where the eager run is itself deterministic
(under DDP the replay runs the same NCCL all-reduces over the same buckets as the eager step):
``benchmarks/bench_step.py --tokens`` checks it through the trainer on the GPU (identical losses for nvfp4
and averis on the H100).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch
from torch import nn

# eager DDP iterations before a capture: PyTorch's CUDA-graph notes ask for at least 11 (the reducer samples
# runtime statistics, with host synchronisations, in iterations 1 to 10, and rebuilds its buckets after the 1st)
DDP_WARMUP = 11


def _no_context(last: bool) -> contextlib.AbstractContextManager:
    return contextlib.nullcontext()


class CaptureFailed(RuntimeError):
    """The step could not be captured (a host synchronisation or a CPU->GPU copy inside it)."""


class GraphedStep:
    """Replays ``loss_fn`` + backward over ``accum`` micro-batches, captured in one CUDA graph.

    loss_fn(x, y) -> scalar loss for one micro-batch; ``x_shape`` / ``y_shape`` are the shapes of
    the stacked micro-batches (accum, batch, seq).  Capture happens on the first call, after
    ``warmup`` eager passes (torch.compile, Triton JIT and cuBLAS initialise there).
    sync(last) -> the context each micro-batch's forward and backward run in (DDP: gradient sync only on
    the last one); stream: the stream to warm up and capture on (DDP: the one it was built on);
    capture_error_mode: torch.cuda.graph's ("thread_local" under DDP: the NCCL watchdog thread queries
    events while this one captures, which "global" forbids to every thread).
    """

    def __init__(self, model: nn.Module, loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                 device: torch.device, warmup: int = 2,
                 sync: Callable[[bool], contextlib.AbstractContextManager] = _no_context,
                 stream: torch.cuda.Stream | None = None, capture_error_mode: str = "global"):
        if device.type != "cuda":
            raise ValueError(f"train.cuda_graph needs a CUDA device, this run is on {device}: set "
                             f"train.cuda_graph=false")
        self.model, self.loss_fn = model, loss_fn  # model: the module holding the quantized layers
        self.device, self.warmup, self.sync = device, warmup, sync
        self.stream = stream or torch.cuda.Stream(device)
        self.capture_error_mode = capture_error_mode
        self.graph: torch.cuda.CUDAGraph | None = None
        self.static_x = self.static_y = self.static_loss = None
        self.grads: list[tuple[nn.Parameter, torch.Tensor]] = []

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Sum of the micro-batch losses (a device scalar); the parameters' .grad hold the mean gradient."""
        if self.graph is None:
            self._capture(x, y)
        elif x.shape != self.static_x.shape or y.shape != self.static_y.shape:
            raise ValueError(f"a CUDA-graphed step needs the same batch shape every step: captured "
                             f"{tuple(self.static_x.shape)}, got {tuple(x.shape)}")
        self.static_x.copy_(x, non_blocking=True)
        self.static_y.copy_(y, non_blocking=True)
        self.graph.replay()
        for p, g in self.grads:  # code outside the step (analysis callbacks) may have replaced .grad
            p.grad = g
        return self.static_loss

    def release(self) -> None:
        """Destroy the captured graph and the gradients it owns (the next call captures again).  Under DDP the
        graph holds NCCL kernels, and destroying the process group while it lives hangs (pytorch/pytorch#115388)."""
        if self.graph is None:
            return
        torch.cuda.synchronize(self.device)
        for p, _ in self.grads:
            p.grad = None
        self.graph.reset()
        self.graph, self.grads = None, []

    # ---- capture ---------------------------------------------------------------------------------
    def _body(self) -> torch.Tensor:
        accum = self.static_x.shape[0]
        total = torch.zeros((), device=self.device)
        for i in range(accum):
            with self.sync(i == accum - 1):
                loss = self.loss_fn(self.static_x[i], self.static_y[i])
                (loss / accum).backward()
            total = total + loss.detach()
        return total

    def _capture(self, x: torch.Tensor, y: torch.Tensor) -> None:
        from ..nn import rng_kept

        self.static_x = torch.empty_like(x, device=self.device)
        self.static_y = torch.empty_like(y, device=self.device)
        self.static_x.copy_(x)
        self.static_y.copy_(y)
        params = [p for p in self.model.parameters() if p.requires_grad]
        side = self.stream  # warm-up and capture on one stream (its cuBLAS workspace is set up before capture)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with rng_kept(self.model), torch.cuda.stream(side):  # the warm-up must not advance the random streams
            for _ in range(self.warmup):
                self._body()
                for p in params:
                    p.grad = None  # the capture must allocate the gradients in its own pool
        torch.cuda.current_stream(self.device).wait_stream(side)
        torch.cuda.synchronize(self.device)
        torch.cuda.empty_cache()  # the graph allocates from its own pool: hand back what the warm-up cached
        graph = torch.cuda.CUDAGraph()
        try:
            # capture records the draws, replays make them
            with rng_kept(self.model), torch.cuda.graph(graph, stream=side,
                                                        capture_error_mode=self.capture_error_mode):
                self.static_loss = self._body()
        except RuntimeError as err:  # e.g. a host sync or a CPU->GPU copy somewhere in the model's step
            for p in params:
                p.grad = None  # what the failed capture allocated: an eager step starts from no gradients
            raise CaptureFailed(f"train.cuda_graph: the training step cannot be captured in a CUDA graph ({err}); "
                               f"the model or recipe does something a graph cannot hold (a host "
                               f"synchronisation or a copy from the CPU inside the step): run with "
                               f"train.cuda_graph=false") from err
        self.graph = graph
        self.grads = [(p, p.grad) for p in params if p.grad is not None]
