"""Resume and checkpoint safety: every refusal is one clear line, a damaged newest checkpoint falls back to
the newest one that reads, --resume without a checkpoint says so, and pruning survives a kill."""

from __future__ import annotations

from pathlib import Path

import pytest

from averis.train import checkpoint as ckpt


# ---- pruning and leftovers -------------------------------------------------------------------------------
def _write_tmp(root: Path, step: int) -> None:
    tmp = ckpt.tmp_dir(root, step)
    tmp.mkdir(parents=True)
    for name in (ckpt.MODEL_FILE, ckpt.TRAINER_FILE, "rng_rank0.pt"):
        (tmp / name).write_bytes(b"x")


def _save(root: Path, step: int, keep: int = 2) -> Path:
    _write_tmp(root, step)
    return ckpt.finalize(root, step, keep)


def _killing_rmtree(path, *args, **kwargs):
    """shutil.rmtree killed after its first file (the order of a real one is the directory's)."""
    victim = sorted(p for p in Path(path).iterdir() if p.name != ckpt.COMPLETE)[0]
    victim.unlink()
    raise KeyboardInterrupt


def test_a_kill_while_pruning_leaves_no_loadable_half_and_the_next_save_cleans_it(tmp_path, monkeypatch):
    root = tmp_path / "checkpoints"
    for step in (1, 2):
        _save(root, step)
    with monkeypatch.context() as m:
        m.setattr(ckpt.shutil, "rmtree", _killing_rmtree)
        with pytest.raises(KeyboardInterrupt):
            _save(root, 3)  # prunes step 1: killed half way
    half = ckpt.step_dir(root, 1)
    assert half.is_dir() and not (half / ckpt.COMPLETE).exists()  # the marker goes first
    assert ckpt.latest(root).name == "step_00000003"
    _write_tmp(root, 0)  # a save killed before its rename, older than the newest
    _save(root, 4)
    assert sorted(p.name for p in root.iterdir()) == ["latest", "step_00000003", "step_00000004"]


def test_pruning_never_removes_the_checkpoint_just_written(tmp_path):
    """Newer folders (a damaged newest one, or a run resumed from an earlier checkpoint) do not count."""
    root = tmp_path / "checkpoints"
    for step in (4, 8, 12):
        _save(root, step, keep=0)
    folder = _save(root, 5, keep=2)
    assert folder.name == "step_00000005" and ckpt.is_complete(folder)
    assert sorted(p.name for p in root.glob("step_*")) == [f"step_{s:08d}" for s in (4, 5, 8, 12)]
    _save(root, 6, keep=2)
    assert sorted(p.name for p in root.glob("step_*")) == [f"step_{s:08d}" for s in (5, 6, 8, 12)]
    assert (root / "latest").read_text() == "step_00000006"

