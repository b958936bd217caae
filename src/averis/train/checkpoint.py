"""Checkpoints: ``OUT/checkpoints/step_NNNNNNNN/`` with the model in safetensors and the rest beside it.

    model.safetensors   full fp32 model state (tied weights stored once, aliases in the metadata)
    trainer.pt          optimizer, scheduler, step, tokens seen, divergence tracker, config
    rng_rank{R}.pt      torch CPU / CUDA RNG, per rank (the quantizers' counters are in the model state)
    complete            written last: a folder without it is never loaded

A checkpoint is built in a ``.tmp-`` folder and renamed into place, then ``latest`` is
rewritten (also by rename), so a crash at any point leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

MODEL_FILE = "model.safetensors"
TRAINER_FILE = "trainer.pt"
COMPLETE = "complete"


def step_dir(root: Path, step: int) -> Path:
    return Path(root) / f"step_{step:08d}"


def tmp_dir(root: Path, step: int) -> Path:
    return Path(root) / f".tmp-step_{step:08d}"


def dedupe_tied(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """safetensors refuses tensors that share memory: keep one name per storage, remember the aliases."""
    kept: dict[str, torch.Tensor] = {}
    aliases: dict[str, str] = {}
    seen: dict[tuple, str] = {}
    for name, tensor in state.items():
        key = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape))
        if tensor.numel() and key in seen:
            aliases[name] = seen[key]
        else:
            seen[key] = name
            kept[name] = tensor.detach().cpu().contiguous()
    return kept, aliases


def save_model_file(state: dict[str, torch.Tensor], path: Path, metadata: dict) -> None:
    kept, aliases = dedupe_tied(state)
    save_file(kept, str(path), metadata={"aliases": json.dumps(aliases), **{k: str(v) for k, v in metadata.items()}})


def load_model_file(path: Path) -> dict[str, torch.Tensor]:
    """The full state dict (aliases filled back in)."""
    try:
        state = load_file(str(path))
        from safetensors import safe_open

        with safe_open(str(path), "pt") as f:
            aliases = json.loads((f.metadata() or {}).get("aliases", "{}"))
    except (SafetensorError, OSError, json.JSONDecodeError) as err:
        raise ValueError(f"corrupt checkpoint file {path}: {err}") from err
    for alias, name in aliases.items():
        state[alias] = state[name]
    return state


def model_signature(state: dict[str, torch.Tensor]) -> dict[str, list[int]]:
    return {name: list(t.shape) for name, t in state.items()}


def check_signature(saved: dict[str, list[int]], current: dict[str, list[int]], where: Path) -> None:
    """A clear error when a checkpoint was written by a model of another shape (or recipe layout)."""
    missing = sorted(set(current) - set(saved))
    extra = sorted(set(saved) - set(current))
    wrong = sorted(n for n in set(saved) & set(current) if saved[n] != current[n])
    if missing or extra or wrong:
        parts = []
        if wrong:
            parts.append("shapes differ for " + ", ".join(f"{n} {saved[n]} vs {current[n]}" for n in wrong[:3]))
        if missing:
            parts.append(f"the model has {len(missing)} tensor(s) the checkpoint lacks (e.g. {missing[0]})")
        if extra:
            parts.append(f"the checkpoint has {len(extra)} tensor(s) the model lacks (e.g. {extra[0]})")
        raise ValueError(f"checkpoint {where} does not match this model: {'; '.join(parts)}. "
                         f"Resume with the same model config, or start a new --out")


def is_complete(folder: Path) -> bool:
    return (folder / COMPLETE).is_file() and (folder / MODEL_FILE).is_file() and (folder / TRAINER_FILE).is_file()


def latest(root: Path) -> Path | None:
    """The newest complete checkpoint under root (the ``latest`` pointer first, else a scan)."""
    root = Path(root)
    pointer = root / "latest"
    if pointer.is_file():
        folder = root / pointer.read_text().strip()
        if is_complete(folder):
            return folder
    for folder in sorted(root.glob("step_*"), reverse=True):
        if is_complete(folder):
            return folder
    return None


def finalize(root: Path, step: int, keep: int) -> Path:
    """Rename the finished tmp folder into place, point ``latest`` at it, drop checkpoints beyond `keep`."""
    tmp, final = tmp_dir(root, step), step_dir(root, step)
    (tmp / COMPLETE).write_text(str(step))
    if final.exists():  # a re-run of the same step (e.g. after a resume): replace it
        shutil.rmtree(final)
    os.replace(tmp, final)
    pointer_tmp = Path(root) / "latest.tmp"
    pointer_tmp.write_text(final.name)
    os.replace(pointer_tmp, Path(root) / "latest")
    if keep > 0:
        done = sorted(p for p in Path(root).glob("step_*") if is_complete(p))
        for old in done[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    return final


def save_rng(path: Path) -> None:
    """This rank's torch CPU and CUDA RNG states."""
    state = {"torch_cpu": torch.get_rng_state(),
             "torch_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}
    torch.save(state, path)


def load_rng(path: Path) -> None:
    """Restore torch's RNG from path."""
    if not path.is_file():
        raise ValueError(f"checkpoint {path.parent} has no {path.name}: it was written with another number of "
                         f"ranks; resume with the same world size")
    try:
        state = torch.load(path, weights_only=True)
    except Exception as err:  # zip/pickle errors: all mean a damaged file
        raise ValueError(f"corrupt checkpoint file {path}: {err}") from err
    torch.set_rng_state(state["torch_cpu"])
    if state["torch_cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["torch_cuda"])


def load_trainer_state(folder: Path) -> dict:
    try:
        return torch.load(folder / TRAINER_FILE, weights_only=True)
    except Exception as err:  # pickle and zip errors have many types; all mean the same to the user
        raise ValueError(f"corrupt checkpoint file {folder / TRAINER_FILE}: {err}") from err
