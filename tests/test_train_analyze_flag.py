"""`averis train / compare --analyze-every N`: mean-bias records in the run folder, training unchanged."""

from __future__ import annotations

import json
from pathlib import Path

from averis.analysis import read_records
from averis.cli import main
from averis.cli._runargs import callback_args, callbacks_from_args

MODEL = ("model.overrides={hidden_size: 64, n_layers: 2, n_heads: 2, n_kv_heads: 1, head_dim: 32, "
         "intermediate_size: 128}")


def sets(tmp_path: Path) -> list[str]:
    values = ["data.max_chars=20000", "data.tokenizer=byte", "data.seq_len=32", "train.batch_size=2",
              "train.eval_every=0", "train.eval_batches=1", "train.ckpt_every=0", "train.tensorboard=false",
              "train.device=cpu", f"data.cache_dir={tmp_path / 'cache'}", MODEL]
    return [arg for v in values for arg in ("--set", v)]


def losses(run: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]


def test_train_analyze_every_records_and_leaves_training_unchanged(tmp_path, capsys):
    # nvfp4 rounds gradients stochastically: the callback's extra backward (--analyze-grads) must not
    # consume the training RNG, or the two runs would part
    common = ["train", "--recipe", "nvfp4", "--max-steps", "3", "--no-progress", *sets(tmp_path)]
    assert main([*common, "--out", str(tmp_path / "with"), "--analyze-every", "2", "--analyze-grads",
                 "--analyze-tokens", "64", "--analyze-formats", "none"]) == 0
    assert "mean_bias.jsonl" in capsys.readouterr().out
    assert main([*common, "--out", str(tmp_path / "without")]) == 0

    records = read_records(tmp_path / "with" / "mean_bias.jsonl")
    assert [r["step"] for r in records] == [1, 2]
    assert {layer["kind"] for layer in records[0]["layers"]} == {"input", "grad_output"}
    assert all(len(r["layers"]) == len(records[0]["layers"]) > 0 for r in records)
    assert records[-1]["layers"][0]["mean_ratio"] != records[0]["layers"][0]["mean_ratio"]  # the model trained
    assert not (tmp_path / "without" / "mean_bias.jsonl").exists()

    summary = {name: json.loads((tmp_path / name / "summary.json").read_text()) for name in ("with", "without")}
    assert summary["with"]["last_loss"] == summary["without"]["last_loss"]
    assert losses(tmp_path / "with") == losses(tmp_path / "without")
    assert [r["loss"] for r in records] == [losses(tmp_path / "with")[s - 1] for s in (1, 2)]


def test_compare_analyze_every_writes_one_record_file_per_run(tmp_path, capsys):
    out = tmp_path / "cmp"
    code = main(["compare", "--recipes", "bf16,nvfp4", "--out", str(out), "--max-steps", "2", "--no-progress",
                 "--no-report", "--analyze-every", "1", "--analyze-tokens", "64", "--analyze-formats", "nvfp4",
                 *sets(tmp_path)])
    assert code == 0
    for recipe in ("bf16", "nvfp4"):
        records = read_records(out / recipe / "mean_bias.jsonl")
        assert [r["step"] for r in records] == [1, 2]
        assert records[0]["loss"] == losses(out / recipe)[0]
        assert "nvfp4_rel_error" in records[0]["layers"][0] and "grad_output" not in str(records[0])
    # the records are each run's own: the same initial weights, different recipes -> different losses at step 2
    assert (read_records(out / "bf16" / "mean_bias.jsonl")[1]["loss"]
            != read_records(out / "nvfp4" / "mean_bias.jsonl")[1]["loss"])


def test_analyze_flags_checked_and_passed_to_child_runs(tmp_path, capsys):
    base = ["train", "--out", str(tmp_path / "r"), "--max-steps", "1", "--no-progress", *sets(tmp_path)]
    assert main([*base, "--analyze-every", "-1"]) == 2
    assert "--analyze-every -1" in capsys.readouterr().err
    assert main([*base, "--analyze-grads"]) == 2
    assert "needs --analyze-every" in capsys.readouterr().err
    assert main([*base, "--analyze-every", "1", "--analyze-formats", "fp3"]) == 2
    assert "unknown format(s) fp3" in capsys.readouterr().err
    assert not (tmp_path / "r" / "metrics.jsonl").exists()

    from averis.cli import build_parser

    args = build_parser().parse_args(["compare", "--recipes", "bf16", "--analyze-every", "5", "--analyze-grads",
                                      "--analyze-formats", "none"])
    assert callback_args(args) == ["--analyze-every", "5", "--analyze-tokens", "1024", "--analyze-formats", "none",
                                   "--analyze-grads"]
    child = build_parser().parse_args(["train", "--config", "c.yaml", "--resume", *callback_args(args)])
    assert (child.resume, child.analyze_every, child.analyze_grads, child.analyze_formats) == ("auto", 5, True, "none")
    (callback,) = callbacks_from_args(child)
    assert (callback.every, callback.tokens, callback.grads, callback.formats) == (5, 1024, True, ())
