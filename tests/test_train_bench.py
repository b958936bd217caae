"""The GPU benchmark scripts end to end on CPU with tiny settings: prep token files, run two recipes, report."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from averis.train.quant import recipe_names
from averis.train.report import write_report

REPO = Path(__file__).resolve().parent.parent
TINY = ["train.max_steps=3", "data.seq_len=32", "train.batch_size=2", "train.eval_every=3", "train.eval_batches=1",
        "train.tensorboard=false", "model.overrides={hidden_size: 64, n_layers: 2, n_heads: 2, n_kv_heads: 1, "
        "head_dim: 32, intermediate_size: 128}"]


def script(*args: str) -> str:
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "train_scratch.py"), *args],
                          capture_output=True, text=True, timeout=600, cwd=REPO)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done.stdout


@pytest.mark.slow
@pytest.mark.skipif("averis" not in recipe_names(), reason="averis.recipes has no 'averis' recipe")
def test_scratch_benchmark_prep_run_report(tmp_path, monkeypatch):
    tokens, out = tmp_path / "tokens", tmp_path / "results"
    with monkeypatch.context() as m:  # the bundled text stands in for the corpus
        m.setenv("AVERIS_CORPUS", str(REPO / "src" / "averis" / "data"))
        text = script("prep", "--tokens-out", str(tokens), "--max-chars", "150000", "--max-train-tokens", "16384")
    vocab = int(re.search(r"train.bin: [\d,]+ tokens, uint16, vocab (\d+)", text).group(1))
    assert 1000 < vocab <= 16384  # a 16k BPE, short of merges on this little text
    assert "train.bin: 16,384 tokens" in text  # thinned to two blocks
    sets = [arg for s in TINY for arg in ("--set", s)]
    text = script("run", "--tokens", str(tokens), "--out", str(out), "--recipes", "bf16,averis", "--seeds", "0",
                  "--jobs", "2", "--export", str(tmp_path / "export"), *sets)
    assert "| averis | 1 | 3 |" in text
    report = json.loads((out / "report.json").read_text())
    assert {r["status"] for r in report["runs"]} == {"done"} and len(report["runs"]) == 2
    assert (out / "averis" / "metrics.jsonl").is_file()
    exported = sorted(p.name for p in (tmp_path / "export").iterdir())
    assert exported == ["gap_curves.png", "loss_curves.png", "report.json", "report.md", "runs.tar.gz"]
    with tarfile.open(tmp_path / "export" / "runs.tar.gz") as tar:
        tar.extractall(tmp_path / "unpacked", filter="data")
        assert not any("checkpoints" in n for n in tar.getnames())
    again = write_report(tmp_path / "unpacked", plots=False)
    assert json.loads(json.dumps(again["rows"])) == report["rows"]  # the bundle alone rebuilds the table
    assert "finished, skipped" in script("run", "--tokens", str(tokens), "--out", str(out), "--recipes",
                                         "bf16,averis", "--seeds", "0", "--jobs", "2", *sets)


def _layer(kind, ratio, err, err_removed, site="self_attn.q_proj"):
    return {"kind": kind, "site": site, "mean_ratio": ratio, "cos_mean_v1": 0.5, "nvfp4_rel_error": err,
            "nvfp4_rel_error_mean_removed": err_removed}


def test_mean_bias_runs_summarises_recorded_statistics(tmp_path):
    """benchmarks/mean_bias_runs.py: medians over layers per step, and the share of the NVFP4 error the mean carries."""
    run = tmp_path / "averis"
    run.mkdir()
    layers = [_layer("input", 0.2, 0.1, 0.05), _layer("input", 0.6, 0.1, 0.09, "mlp.gate_proj"),
              _layer("input", 0.4, 0.2, 0.15),
              _layer("grad_output", 0.1, 0.1, 0.1)]
    (run / "mean_bias.jsonl").write_text(json.dumps({"step": 100, "loss": 5.0, "layers": layers}) + "\n")
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "mean_bias_runs.py"), str(run), "--out",
                           str(tmp_path / "out")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads((tmp_path / "out" / "mean_bias_runs.json").read_text())["averis"]
    assert summary["input"]["mean_ratio"] == [[100, 0.4]]
    # error energy explained: 1 - (0.05/0.1)^2 = 0.75, 1 - (0.09/0.1)^2 = 0.19, 1 - (0.15/0.2)^2 = 0.4375
    assert summary["input"]["error_explained_by_mean"] == [[100, pytest.approx(0.4375)]]
    assert summary["grad_output"]["error_explained_by_mean"] == [[100, 0.0]]
    assert summary["last_by_site"]["input"]["mlp.gate_proj"]["mean_ratio"] == 0.6  # the one layer of that site
    assert summary["last_by_site"]["input"]["self_attn.q_proj"]["mean_ratio"] == pytest.approx(0.3)
    assert (tmp_path / "out" / "mean_bias_runs.png").stat().st_size > 0
    missing = subprocess.run([sys.executable, str(REPO / "benchmarks" / "mean_bias_runs.py"), str(tmp_path),
                              "--out", str(tmp_path / "o2")], capture_output=True, text=True, timeout=300)
    assert missing.returncode != 0 and "--analyze-every" in missing.stderr
