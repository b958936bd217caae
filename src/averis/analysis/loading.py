"""Resolve what the user named on the command line to (model, tokenizer, label)."""

from __future__ import annotations

from pathlib import Path

import torch

HF_MARKERS = ("config.json",)


def load_model(spec: str, *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32):
    """(model in eval mode, tokenizer, label) for a name, a GGUF file, an HF folder or one of our checkpoints.

    Accepted: "smollm2-135m"; a *.gguf file; a Hugging Face model folder (config.json); a checkpoint of
    ``averis train`` (a step folder with model.safetensors, or a run folder: its latest checkpoint);
    a Hugging Face hub id (org/name, needs network or a filled cache).
    """
    from ..models import hf

    path = Path(spec)
    if spec.lower() == hf.SMOLLM2_NAME or spec.endswith(".gguf"):
        model, tok = hf.load_causal_lm(spec, dtype=dtype, device=device)
        return model, tok, path.name if spec.endswith(".gguf") else spec.lower()
    if path.exists():
        if path.is_dir() and any((path / m).is_file() for m in HF_MARKERS):
            model, tok = hf.load_causal_lm(str(path), dtype=dtype, device=device)
            return model, tok, path.name
        if _is_averis_checkpoint(path):
            return _load_averis_checkpoint(path, device, dtype)
        raise ValueError(f"{spec} is neither a Hugging Face model folder (config.json), a GGUF file, nor a "
                         f"checkpoint of averis train (model.safetensors, or a run folder with checkpoints/)")
    if spec.count("/") == 1 and not spec.startswith((".", "/")):
        model, tok = hf.load_causal_lm(spec, dtype=dtype, device=device)  # a hub id
        return model, tok, spec
    raise FileNotFoundError(f"no model at {spec}: give smollm2-135m, a .gguf file, a Hugging Face folder or hub "
                            f"id, or a checkpoint folder of averis train")


def _is_averis_checkpoint(path: Path) -> bool:
    return (path / "model.safetensors").is_file() or (path / "checkpoints").is_dir()


def _load_averis_checkpoint(path: Path, device, dtype):
    from .checkpoints import load_checkpoint

    model, tok, label = load_checkpoint(path)
    return model.to(device=device, dtype=dtype).eval(), tok, label
