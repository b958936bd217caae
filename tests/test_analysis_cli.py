"""averis analyze / fidelity on tiny checkpoints, their error paths, and the training callback."""

import json
from pathlib import Path

import pytest
import torch

from averis.analysis import MeanBiasCallback, activation_stats, read_records
from averis.analysis.callback import SCALARS, compact
from averis.analysis.loading import load_model
from averis.cli import main
from averis.train import Trainer
from averis.train import checkpoint as ckpt
from averis.train.config import RunConfig, to_dict
from averis.train.model import build_model

TINY_MODEL = dict(n_layers=2, hidden_size=64, head_dim=16, intermediate_size=128)


def tiny_config(tmp_path, **train) -> RunConfig:
    cfg = RunConfig(recipe="bf16", out=str(tmp_path / "run"))
    cfg.data.tokenizer, cfg.data.max_chars, cfg.data.seq_len = "byte", 20_000, 32
    cfg.data.cache_dir = str(tmp_path / "cache")
    cfg.model.overrides = dict(TINY_MODEL)
    cfg.train.device, cfg.train.progress, cfg.train.tensorboard = "cpu", False, False
    for k, v in train.items():
        setattr(cfg.train, k, v)
    return cfg


def write_checkpoint(cfg: RunConfig, step: int, seed: int):
    """A checkpoint folder as averis train lays it out (model.safetensors + trainer.pt + complete)."""
    torch.manual_seed(seed)
    model = build_model(cfg.model, 257, cfg.data.seq_len)
    folder = ckpt.step_dir(Path(cfg.out) / "checkpoints", step)
    folder.mkdir(parents=True)
    ckpt.save_model_file(model.state_dict(), folder / ckpt.MODEL_FILE, {"step": step})
    torch.save({"config": to_dict(cfg), "step": step}, folder / ckpt.TRAINER_FILE)
    (folder / ckpt.COMPLETE).write_text(str(step))
    return folder


def test_analyze_two_checkpoints_writes_reports_and_evolution(tmp_path):
    cfg = tiny_config(tmp_path)
    early = write_checkpoint(cfg, 1, seed=0)
    write_checkpoint(cfg, 2, seed=1)
    out = tmp_path / "out"
    rc = main(["analyze", str(early), cfg.out, "--out", str(out), "--tokens", "64", "--seq-len", "32",
               "--no-quant", "--grads", "--no-plots"])
    assert rc == 0
    for label in ("run/step_00000001", "run/step_00000002"):  # the run folder resolves to its latest
        folder = out / label
        for name in ("report.md", "stats.json", "layers.csv"):
            assert (folder / name).is_file(), name
        stats = json.loads((folder / "stats.json").read_text())
        assert stats["meta"]["tokens"] == 64
        assert {r["kind"] for r in stats["layers"]} == {"input", "grad_output"}
        assert "## Output gradients" in (folder / "report.md").read_text()
    evolution = json.loads((out / "evolution.json").read_text())
    assert list(evolution) == ["run/step_00000001", "run/step_00000002"]
    site = "input:mlp.down_proj"
    assert evolution["run/step_00000001"][site] != evolution["run/step_00000002"][site]
    assert "mean_ratio" in (out / "evolution.md").read_text()


def test_load_model_from_checkpoint_matches_saved_weights(tmp_path):
    cfg = tiny_config(tmp_path)
    folder = write_checkpoint(cfg, 3, seed=5)
    model, tokenizer, label = load_model(str(folder))
    saved = ckpt.load_model_file(folder / ckpt.MODEL_FILE)
    assert torch.equal(model.state_dict()["model.layers.1.mlp.down_proj.weight"],
                       saved["model.layers.1.mlp.down_proj.weight"])
    assert label == "run/step_00000003" and tokenizer.vocab_size == 257 and not model.training


@pytest.mark.parametrize("argv, message", [
    (["analyze", "no/such/model/here", "--out", "x"], "no model at"),
    (["analyze", "{tmp}", "--out", "x"], "neither a Hugging Face model folder"),
    (["analyze", "{tmp}/missing.gguf", "--out", "x"], "no GGUF file"),
    (["analyze", "smollm2-135m", "--out", "x", "--tokens", "8"], "too few tokens"),
    (["analyze", "smollm2-135m", "--out", "x", "--tokens", "100", "--seq-len", "64"], "multiple"),
    (["analyze", "smollm2-135m", "--out", "x", "--formats", "int4"], "unknown format"),
    (["fidelity", "smollm2-135m", "--out", "x", "--recipes", "fp2"], "unknown recipe"),
    (["fidelity", "smollm2-135m", "--out", "x", "--forward-only", "--no-anchor"], "nothing to measure"),
])
def test_cli_errors_are_clear(tmp_path, capsys, argv, message):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_checkpoint_folder_without_checkpoints(tmp_path, capsys):
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    assert main(["analyze", str(tmp_path / "run"), "--out", str(tmp_path / "o")]) == 2
    assert "no complete checkpoint" in capsys.readouterr().err


def test_text_file_with_too_few_tokens(tmp_path, capsys):
    cfg = tiny_config(tmp_path)
    folder = write_checkpoint(cfg, 1, seed=0)
    text = tmp_path / "short.txt"
    text.write_text("only a few bytes")
    assert main(["analyze", str(folder), "--out", str(tmp_path / "o"), "--text", str(text), "--tokens", "64",
                 "--seq-len", "32"]) == 2
    assert "too few tokens" in capsys.readouterr().err
    assert main(["analyze", str(folder), "--out", str(tmp_path / "o"), "--text", str(tmp_path / "none.txt")]) == 2
    assert "no text file" in capsys.readouterr().err


def test_fidelity_cli_on_a_checkpoint(tmp_path):
    cfg = tiny_config(tmp_path)
    folder = write_checkpoint(cfg, 1, seed=0)
    out = tmp_path / "fid"
    rc = main(["fidelity", str(folder), "--out", str(out), "--recipes", "bf16", "averis", "--tokens", "64",
               "--seq-len", "32"])
    assert rc == 0
    data = json.loads((out / "fidelity.json").read_text())
    assert set(data["summary"]) == {"bf16", "averis"}
    assert set(data["forward_anchor"]["modes"]) == {"nvfp4", "nvfp4_mean_fp4", "nvfp4_mean_bf16"}
    assert data["summary"]["bf16"]["y"] < 1e-5 < data["summary"]["averis"]["y"]
    text = (out / "fidelity.md").read_text()
    assert "mean split, BF16 mean" in text and "| averis |" in text
    assert (out / "fidelity_layers.csv").is_file() and (out / "fidelity.png").is_file()


def test_default_text_without_the_corpus_is_the_bundled_text(tmp_path, monkeypatch, capsys):
    """On a fresh clone (no ../shared; AVERIS_CORPUS=none stands for it) analyze and fidelity read the bundled
    text of the --corpus name, say so on one line of stderr, and the report names what was read."""
    monkeypatch.setenv("AVERIS_CORPUS", "none")
    folder = write_checkpoint(tiny_config(tmp_path), 1, seed=0)
    assert main(["fidelity", str(folder), "--out", str(tmp_path / "fid"), "--forward-only", "--tokens", "64",
                 "--seq-len", "32", "--no-plots"]) == 0
    err = capsys.readouterr().err
    assert [ln for ln in err.splitlines() if "bundled" in ln] == [
        "averis: the offline corpus is switched off (AVERIS_CORPUS=none); reading the bundled austen text instead"]
    assert json.loads((tmp_path / "fid" / "fidelity.json").read_text())["meta"]["text"] == "bundled austen"
    assert main(["analyze", str(folder), "--out", str(tmp_path / "an"), "--tokens", "64", "--seq-len", "32",
                 "--no-quant", "--no-plots", "--corpus", "moby_dick"]) == 0
    assert "bundled moby_dick" in capsys.readouterr().err
    assert json.loads((tmp_path / "an" / "stats.json").read_text())["meta"]["text"] == "bundled moby_dick"


def test_callback_records_and_leaves_training_unchanged(tmp_path):
    """The callback's backward draws stochastic-rounding noise: it must restore the generators."""
    def run(name, callbacks):
        cfg = tiny_config(tmp_path / name, max_steps=2, batch_size=2, eval_every=0, ckpt_every=0, eval_batches=1)
        cfg.recipe = "nvfp4"
        return Trainer(cfg, callbacks=callbacks).fit()

    callback = MeanBiasCallback(every=1, tokens=64, grads=True, formats=())
    with_cb = run("a", [callback])
    without = run("b", [])
    assert with_cb["last_loss"] == without["last_loss"]
    records = read_records(tmp_path / "a" / "run" / "mean_bias.jsonl")
    assert [r["step"] for r in records] == [1, 2]
    kinds = {layer["kind"] for layer in records[0]["layers"]}
    assert kinds == {"input", "grad_output"}
    assert records[1]["layers"][0]["mean_ratio"] != records[0]["layers"][0]["mean_ratio"]  # the model trained


def test_compact_record_keeps_scalars_and_fp4_errors():
    g = torch.Generator().manual_seed(0)
    record = {"name": "a", "kind": "input", "block": 0, "site": "s",
              **activation_stats(torch.randn(64, 32, generator=g) + 3.0, formats=("nvfp4",))}
    out = compact(record)
    assert set(out) == {"name", "kind", "block", "site", *SCALARS, "nvfp4_rel_error", "nvfp4_rel_error_mean_removed"}
    assert out["nvfp4_rel_error_mean_removed"] < out["nvfp4_rel_error"]


def test_callback_rejects_bad_every():
    with pytest.raises(ValueError, match="every"):
        MeanBiasCallback(every=0)
