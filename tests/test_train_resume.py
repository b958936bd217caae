"""Resume and checkpoint safety: every refusal is one clear line, a damaged newest checkpoint falls back to
the newest one that reads, --resume without a checkpoint says so, and pruning survives a kill."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from test_train import tiny

from averis.cli import main
from averis.train import Trainer
from averis.train import checkpoint as ckpt
from averis.train.quant import recipe_names

MODEL = ("model.overrides={hidden_size: 64, n_layers: 2, n_heads: 2, n_kv_heads: 1, head_dim: 32, "
         "intermediate_size: 128}")


def _one_line(message: str) -> str:
    assert "\n" not in message.strip(), message
    return message


# ---- refusals ------------------------------------------------------------------------------------------
def _cli_sets(tmp_path: Path) -> list[str]:
    values = ["data.max_chars=60000", "data.tokenizer=byte", "data.seq_len=32", "train.batch_size=4",
              "train.eval_every=2", "train.eval_batches=1", "train.tensorboard=false",
              f"data.cache_dir={tmp_path / 'cache'}", MODEL]
    return [arg for v in values for arg in ("--set", v)]


@pytest.mark.skipif(not {"averis", "nvfp4"} <= set(recipe_names()), reason="needs the averis and nvfp4 recipes")
def test_cli_resume_under_another_recipe_is_one_clear_line(tmp_path, capsys):
    """`averis train --recipe nvfp4 --resume` on an averis run: was AttributeError in _diff (a str config)."""
    out = str(tmp_path / "run")
    assert main(["train", "--recipe", "averis", "--out", out, "--max-steps", "2", "--no-progress",
                 *_cli_sets(tmp_path)]) == 0
    capsys.readouterr()
    code = main(["train", "--recipe", "nvfp4", "--resume", "--out", out, "--max-steps", "4", "--no-progress",
                 *_cli_sets(tmp_path)])
    err = _one_line(capsys.readouterr().err)
    assert code == 2 and "Traceback" not in err
    assert "recipe: 'averis' -> 'nvfp4'" in err
    assert f"--config {Path(out) / 'config.yaml'}" in err and "another --out" in err


def _trained(tmp_path: Path, name: str = "r", *extra: str) -> Path:
    Trainer(tiny(tmp_path, name, "train.max_steps=4", *extra)).fit()
    return tmp_path / name / "checkpoints"


def _set_world(root: Path, world: int) -> None:
    folder = ckpt.latest(root)
    state = torch.load(folder / ckpt.TRAINER_FILE, weights_only=True)
    state["world"] = world
    torch.save(state, folder / ckpt.TRAINER_FILE)


@pytest.mark.parametrize("change, expected", [
    (["recipe=nvfp4"], "recipe: 'bf16' -> 'nvfp4'"),
    (["model.overrides.n_layers=3"], "model.overrides.n_layers: 2 -> 3"),
    (["data.seq_len=16"], "data.seq_len: 32 -> 16"),
])
def test_resume_with_another_config_is_one_clear_line(tmp_path, change, expected):
    if change[0] == "recipe=nvfp4" and "nvfp4" not in recipe_names():
        pytest.skip("averis.recipes has no nvfp4")
    _trained(tmp_path)
    with pytest.raises(ValueError) as err:
        Trainer(tiny(tmp_path, "r", "train.max_steps=8", *change), resume=True)
    message = _one_line(str(err.value))
    assert expected in message and "--config" in message and "another --out" in message


def test_resume_with_another_number_of_ranks_is_one_clear_line(tmp_path):
    _set_world(_trained(tmp_path), 2)
    with pytest.raises(ValueError) as err:
        Trainer(tiny(tmp_path, "r", "train.max_steps=8"), resume=True)
    message = _one_line(str(err.value))
    assert "written by 2 rank(s), this run has 1" in message and "same number of processes" in message


@pytest.mark.parametrize("damage", ["model.safetensors", "trainer.pt", "rng_rank0.pt", "no rng_rank0.pt"])
def test_a_damaged_only_checkpoint_is_one_clear_line(tmp_path, damage):
    root = _trained(tmp_path)
    _damage(ckpt.latest(root), damage)
    with pytest.raises(ValueError) as err:
        Trainer(tiny(tmp_path, "r", "train.max_steps=8"), resume=True)
    message = _one_line(str(err.value))
    assert "step_00000004" in message and "no earlier complete checkpoint" in message and "--out" in message


def _damage(folder: Path, what: str) -> None:
    if what.startswith("no "):
        (folder / what[3:]).unlink()
    else:
        (folder / what).write_bytes(b"garbage")


# ---- a damaged newest checkpoint ---------------------------------------------------------------------------
@pytest.mark.parametrize("damage", ["model.safetensors", "trainer.pt", "rng_rank0.pt", "no rng_rank0.pt"])
def test_a_damaged_latest_checkpoint_falls_back_to_the_newest_complete_one(tmp_path, capsys, damage):
    straight = Trainer(tiny(tmp_path, "a")).fit()
    root = tmp_path / "r" / "checkpoints"
    Trainer(tiny(tmp_path, "r")).fit()  # checkpoints at steps 4 and 8
    _damage(root / "step_00000008", damage)
    capsys.readouterr()
    trainer = Trainer(tiny(tmp_path, "r"), resume=True)
    err = capsys.readouterr().err
    assert trainer.step == 4
    warning = [line for line in err.splitlines() if "step_00000008" in line]
    assert len(warning) == 1 and "step_00000004" in warning[0] and "warning" in warning[0]
    summary = trainer.fit()  # step 8 is redone and its damaged checkpoint replaced
    assert summary["last_loss"] == straight["last_loss"] and summary["val_loss"] == straight["val_loss"]
    assert ckpt.latest(root).name == "step_00000008"
    Trainer(tiny(tmp_path, "r", "train.max_steps=9"), resume=True)  # the new step 8 reads
    assert "warning" not in capsys.readouterr().err


# ---- --resume with nothing to resume ---------------------------------------------------------------------
def test_resume_without_a_checkpoint_says_so(tmp_path, capsys):
    trainer = Trainer(tiny(tmp_path, "fresh"), resume=True)
    err = capsys.readouterr().err
    assert trainer.step == 0
    assert f"no checkpoint in {tmp_path / 'fresh' / 'checkpoints'}" in err and "starting from step 1" in err


def test_cli_resume_without_a_checkpoint_says_so(tmp_path, capsys):
    out = tmp_path / "fresh"
    assert main(["train", "--resume", "--out", str(out), "--max-steps", "1", "--no-progress",
                 *_cli_sets(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert f"no checkpoint in {out / 'checkpoints'}" in err and "starting from step 1" in err


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


def test_resume_cleans_leftovers_of_a_killed_pruning(tmp_path):
    root = _trained(tmp_path, "r", "train.ckpt_every=2")  # steps 2 and 4
    half = root / "step_00000002"
    (half / ckpt.COMPLETE).unlink()
    (half / ckpt.MODEL_FILE).unlink()
    shutil.copytree(root / "step_00000004", root / ".tmp-step_00000003")
    Trainer(tiny(tmp_path, "r", "train.max_steps=8"), resume=True)
    assert sorted(p.name for p in root.iterdir()) == ["latest", "step_00000004"]


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


@pytest.mark.slow
def test_ranks_agree_to_fall_back_when_one_rank_cannot_read_its_file(tmp_path):
    """Only rank 1's RNG file of the newest checkpoint is damaged: both ranks resume from the one before."""
    from test_train_ddp import common, run

    out = tmp_path / "ddp"
    run(["--out", str(out), "--max-steps", "4", *common(tmp_path)], world=2)  # checkpoints at 2 and 4
    (out / "checkpoints" / "step_00000004" / "rng_rank1.pt").write_bytes(b"garbage")
    log = run(["--out", str(out), "--max-steps", "5", "--resume", *common(tmp_path)], world=2)
    assert "resuming from" in log and "step_00000002" in log and "(step 2)" in log
    assert [json.loads(x)["step"] for x in (out / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3, 4, 5]


def test_a_checkpoint_from_before_the_sr_counters_resumes_with_a_warning():
    """Checkpoints written before the quantizers' averis_rng buffers existed lack those entries: they resume
    (fresh counters) with a warning, while any other missing tensor is still refused."""
    from pathlib import Path

    from averis.train.checkpoint import check_signature

    saved = {"layers.0.q.weight": [4, 4]}
    current = {"layers.0.q.weight": [4, 4], "layers.0.q.averis_rng": [2]}
    with pytest.warns(UserWarning, match="predates the quantizers' SR counters"):
        check_signature(saved, current, Path("ckpt"))
    with pytest.raises(ValueError, match="the checkpoint lacks"):
        check_signature(saved, {**current, "layers.0.k.weight": [4, 4]}, Path("ckpt"))
