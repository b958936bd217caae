"""Data parallelism under torchrun (one machine or several): DDP or FSDP2 (``fully_shard``); gloo on CPU,
NCCL on CUDA.

CUDA graphs (``train.cuda_graph``, see graph.py) run under DDP: NCCL collectives can be captured, and the
DDP reducer's work is the same every step once its buckets are rebuilt (after the first iteration) and its
runtime statistics stop being sampled (iterations 1 to 10), hence ``graph.DDP_WARMUP`` eager iterations
before the capture.  FSDP2 cannot be captured: see ``graph_unsupported``.
"""

from __future__ import annotations

import os
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    mode: str = "none"  # none | ddp | fsdp

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init(mode: str, device_kind: str, cuda_graph: bool = False) -> DistInfo:
    """Start the process group when torchrun launched several processes (mode auto -> ddp)."""
    several = launched_by_torchrun() or (dist.is_initialized() and dist.get_world_size() > 1)
    if mode == "none" or not several:
        return DistInfo()
    if not dist.is_initialized():
        if cuda_graph and device_kind == "cuda":
            # PyTorch's CUDA-graph notes for DDP: the NCCL watchdog's error handling must be off while a
            # collective is captured (read when the process group starts; a value the user set is kept)
            os.environ.setdefault("TORCH_NCCL_ASYNC_ERROR_HANDLING", "0")
        dist.init_process_group(backend="nccl" if device_kind == "cuda" else "gloo")
    local = int(os.environ.get("LOCAL_RANK", dist.get_rank()))
    return DistInfo(dist.get_rank(), dist.get_world_size(), local, "ddp" if mode == "auto" else mode)


def wrap(model: nn.Module, info: DistInfo, device: torch.device,
         stream: torch.cuda.Stream | None = None) -> nn.Module:
    """The model under DDP or FSDP2 (as is for one process).

    stream: the CUDA stream a graphed step captures on; DDP is built on it, because the reducer keeps
    the parameters' gradient accumulators, and autograd runs each accumulator on the stream current
    when it was made: made on another stream, the captured backward would reach outside the capture."""
    if info.mode == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        def ddp() -> nn.Module:
            # gradient_as_bucket_view: .grad are views of the all-reduce buckets (no copy back, no second
            # copy of the gradients in memory; the same values); broadcast_buffers=False: each rank keeps its own
            # stochastic-rounding counters (averis.nn.spread_streams), the models' other buffers are constants
            return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None,
                                           gradient_as_bucket_view=True, broadcast_buffers=False)

        if stream is None:
            return ddp()
        stream.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(stream):
            wrapped = ddp()
        torch.cuda.current_stream(device).wait_stream(stream)
        return wrapped
    if info.mode == "fsdp":
        from torch.distributed.fsdp import fully_shard

        reshard = fsdp_reshards(model, device)
        # shard every transformer block, then the root (embeddings, final norm, head)
        for block in _blocks(model):
            fully_shard(block, reshard_after_forward=reshard)
        fully_shard(model, reshard_after_forward=reshard)
        return model
    return model


# FSDP2 keeps the gathered parameters from the forward to the backward (no second all-gather, about half
# the collectives of a step) while all of them together take at most this share of the device's memory
FSDP_KEEP_GATHERED_SHARE = 1 / 16


def fsdp_reshards(model: nn.Module, device: torch.device) -> bool:
    """FSDP2's reshard_after_forward: free each block's gathered parameters after its forward (and gather
    them again for the backward) unless the whole model is small against the device's memory."""
    if device.type != "cuda":
        return True
    full = sum(p.numel() * p.element_size() for p in model.parameters())
    return full > FSDP_KEEP_GATHERED_SHARE * torch.cuda.get_device_properties(device).total_memory


def graph_unsupported(info: DistInfo) -> str | None:
    """Why train.cuda_graph cannot run in this distributed mode (None: it can)."""
    if info.mode == "fsdp":
        return ("train.cuda_graph does not run under FSDP2: it frees and re-allocates each block's gathered "
                "parameters (storage resize) around every forward and backward, which a CUDA graph cannot "
                "replay; use train.distributed=ddp (graphed) or train.cuda_graph=false")
    return None


def _blocks(model: nn.Module) -> list[nn.Module]:
    """The repeated decoder layers (ModuleList named layers / h / blocks), for per-block sharding."""
    for name, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and name.rsplit(".", 1)[-1] in ("layers", "h", "blocks"):
            return list(module)
    return []


@contextmanager
def grad_sync(model: nn.Module, info: DistInfo, sync: bool):
    """Skip the gradient all-reduce on all but the last micro-batch of an accumulation."""
    if info.mode == "ddp" and not sync:
        with model.no_sync():
            yield
    elif info.mode == "fsdp":
        model.set_requires_gradient_sync(sync)
        yield
    else:
        with nullcontext():
            yield


def all_reduce_sum(values: torch.Tensor, info: DistInfo) -> torch.Tensor:
    if info.world > 1:
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def barrier(info: DistInfo) -> None:
    if info.world > 1:
        dist.barrier()


def broadcast_object(obj, info: DistInfo):
    if info.world == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
