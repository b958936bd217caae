"""The trainer's fast path on a GPU without a flag: what ``train.compile`` / ``train.cuda_graph`` "auto" mean.

An emulated FP4 step of a small model launches thousands of small kernels; run eagerly it is bound by the host
(~10k tokens/s for the 40M ``bench`` model on an H200, against ~300k with torch.compile and the step replayed
from a CUDA graph).  "auto" turns both on where they are verified: the built-in Qwen3 models on CUDA, in one
process or under DDP (benchmarks/results/scratch_seeds, benchmarks/results/multigpu).  Off on the CPU (no
graphs; compiling costs more than it saves in a short run), for Hugging Face models (their forward may hold host
synchronisations a graph cannot capture: set them true to try) and under FSDP2 (not capturable).  true / false
force a setting; a forced graph that cannot be captured is an error, an automatic one falls back to eager
steps with a warning.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .config import RunConfig


@dataclass(frozen=True)
class FastPath:
    compile: bool
    cuda_graph: bool
    graph_is_auto: bool  # a capture failure falls back to eager steps instead of stopping the run


def fast_path(cfg: RunConfig, device: torch.device, dist_mode: str) -> FastPath:
    """The settings this run uses (dist_mode: "none", "ddp" or "fsdp")."""
    t = cfg.train
    verified = device.type == "cuda" and cfg.model.arch == "qwen3" and dist_mode in ("none", "ddp")
    return FastPath(compile=verified if t.compile == "auto" else bool(t.compile),
                    cuda_graph=verified if t.cuda_graph == "auto" else bool(t.cuda_graph),
                    graph_is_auto=t.cuda_graph == "auto")
