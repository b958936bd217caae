"""One-machine data parallelism: DDP or FSDP2 (``fully_shard``) under torchrun; gloo on CPU, NCCL on CUDA."""

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


def init(mode: str, device_kind: str) -> DistInfo:
    """Start the process group when torchrun launched several processes (mode auto -> ddp)."""
    several = launched_by_torchrun() or (dist.is_initialized() and dist.get_world_size() > 1)
    if mode == "none" or not several:
        return DistInfo()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_kind == "cuda" else "gloo")
    local = int(os.environ.get("LOCAL_RANK", dist.get_rank()))
    return DistInfo(dist.get_rank(), dist.get_world_size(), local, "ddp" if mode == "auto" else mode)


def wrap(model: nn.Module, info: DistInfo, device: torch.device) -> nn.Module:
    if info.mode == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        ids = [device.index] if device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)
    if info.mode == "fsdp":
        from torch.distributed.fsdp import fully_shard

        # shard every transformer block, then the root (embeddings, final norm, head)
        for block in _blocks(model):
            fully_shard(block)
        fully_shard(model)
        return model
    return model


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
