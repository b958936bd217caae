"""Checkpoints: ``OUT/checkpoints/step_NNNNNNNN/`` with the model in safetensors and the rest beside it.

    model.safetensors   full fp32 model state (tied weights stored once, aliases in the metadata)
    trainer.pt          optimizer, scheduler, step, tokens seen, divergence tracker, config
    rng_rank{R}.pt      torch CPU / CUDA RNG, per rank (the quantizers' counters are in the model state)
    complete            written last: a folder without it is never loaded

A checkpoint is built in a ``.tmp-`` folder and renamed into place, then ``latest`` is
rewritten (also by rename), so a crash at any point leaves the previous checkpoint intact.
A checkpoint is removed marker first, so a kill half way leaves a folder that is never loaded;
such leftovers (and dead ``.tmp-`` folders) older than the newest complete checkpoint are removed
by the next save or resume.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import warnings
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..nn.state import is_rng_key

MODEL_FILE = "model.safetensors"
TRAINER_FILE = "trainer.pt"
COMPLETE = "complete"


class CorruptCheckpoint(ValueError):
    """A file of a complete checkpoint cannot be read (a resume falls back to an earlier checkpoint)."""


def _reason(err: BaseException) -> str:
    """One short line from a loader's error (torch.load's are paragraphs)."""
    text = next((line.strip() for line in str(err).splitlines() if line.strip()), "")
    text = text.split(". ")[0].rstrip(".")
    return f"{type(err).__name__}: {text[:150]}" if text else type(err).__name__


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
        raise CorruptCheckpoint(f"corrupt checkpoint file {path} ({_reason(err)})") from err
    for alias, name in aliases.items():
        state[alias] = state[name]
    return state


def model_signature(state: dict[str, torch.Tensor]) -> dict[str, list[int]]:
    return {name: list(t.shape) for name, t in state.items()}


def check_signature(saved: dict[str, list[int]], current: dict[str, list[int]], where: Path) -> None:
    """A clear error when a checkpoint was written by a model of another shape (or recipe layout).

    A checkpoint written before the quantized layers kept their stochastic-rounding counter as a buffer
    lacks the ``averis_rng`` entries: it still resumes (with fresh counters, so not bit for bit), with a
    warning."""
    missing = sorted(set(current) - set(saved))
    if missing and all(is_rng_key(n) for n in missing):
        warnings.warn(f"averis: checkpoint {where} predates the quantizers' SR counters ({len(missing)} layers): "
                      f"they restart from their seeds, so the resumed run will not repeat the original bit for bit",
                      stacklevel=2)
        missing = []
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


def step_of(folder: Path) -> int | None:
    """N of a ``step_N`` or ``.tmp-step_N`` folder; None for other names."""
    match = re.fullmatch(r"(?:\.tmp-)?step_(\d+)", Path(folder).name)
    return int(match.group(1)) if match else None


def complete_checkpoints(root: Path) -> list[Path]:
    """Every complete checkpoint under root, newest first: the ``latest`` pointer's, then by step."""
    root = Path(root)
    found = sorted((p for p in root.glob("step_*") if step_of(p) is not None and is_complete(p)),
                   key=step_of, reverse=True)
    pointer = root / "latest"
    if pointer.is_file():
        folder = root / pointer.read_text().strip()
        if folder in found:
            found.remove(folder)
            found.insert(0, folder)
    return found


def latest(root: Path) -> Path | None:
    """The newest complete checkpoint under root (the ``latest`` pointer first, else a scan)."""
    found = complete_checkpoints(root)
    return found[0] if found else None


def remove(folder: Path) -> None:
    """Delete a checkpoint folder, its ``complete`` marker first: a kill half way leaves no loadable half."""
    (Path(folder) / COMPLETE).unlink(missing_ok=True)
    shutil.rmtree(folder, ignore_errors=True)


def clean_leftovers(root: Path) -> list[Path]:
    """Remove what killed saves and prunings left: step folders that are not complete and ``.tmp-``
    folders, older than the newest complete checkpoint (newer ones are replaced when their step is
    saved again). Returns the folders removed."""
    root = Path(root)
    done = [step_of(p) for p in complete_checkpoints(root)]
    if not done:
        return []
    newest = max(done)
    removed = []
    for folder in sorted([*root.glob("step_*"), *root.glob(".tmp-step_*")]):
        step = step_of(folder)
        if step is not None and step < newest and folder.is_dir() and not (
                folder.name.startswith("step_") and is_complete(folder)):
            remove(folder)
            removed.append(folder)
    return removed


def finalize(root: Path, step: int, keep: int) -> Path:
    """Rename the finished tmp folder into place, point ``latest`` at it, drop checkpoints beyond `keep`."""
    tmp, final = tmp_dir(root, step), step_dir(root, step)
    (tmp / COMPLETE).write_text(str(step))
    if final.exists():  # a re-run of the same step (e.g. after a resume): replace it
        remove(final)
    os.replace(tmp, final)
    pointer_tmp = Path(root) / "latest.tmp"
    pointer_tmp.write_text(final.name)
    os.replace(pointer_tmp, Path(root) / "latest")
    if keep > 0:  # only older ones count: newer folders (a damaged one, another branch) never push this out
        older = sorted((p for p in complete_checkpoints(root) if step_of(p) < step), key=step_of)
        for old in older[:max(0, len(older) - (keep - 1))]:
            remove(old)
    clean_leftovers(root)
    return final


def save_rng(path: Path) -> None:
    """This rank's torch CPU and CUDA RNG states."""
    state = {"torch_cpu": torch.get_rng_state(),
             "torch_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}
    torch.save(state, path)


def read_rng(path: Path) -> dict:
    """This rank's saved RNG state (for apply_rng); the caller has checked the number of ranks."""
    if not path.is_file():
        raise CorruptCheckpoint(f"checkpoint {path.parent} has no {path.name} (a damaged or half-deleted folder)")
    return _torch_load(path)


def apply_rng(state: dict) -> None:
    """Restore torch's RNG (the quantizers' counters are buffers in the model state)."""
    torch.set_rng_state(state["torch_cpu"])
    if state["torch_cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["torch_cuda"])


def load_trainer_state(folder: Path) -> dict:
    return _torch_load(Path(folder) / TRAINER_FILE)


def _torch_load(path: Path) -> dict:
    try:
        return torch.load(path, weights_only=True)
    except Exception as err:  # pickle and zip errors have many types; all mean the same to the user
        raise CorruptCheckpoint(f"corrupt checkpoint file {path} ({_reason(err)})") from err
