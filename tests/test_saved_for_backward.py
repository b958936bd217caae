"""benchmarks/saved_for_backward.py end to end on a tiny checkpoint: what autograd saves a token and a step."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from averis.train import Trainer, load_config

REPO = Path(__file__).resolve().parent.parent


def test_saved_for_backward_counts_per_token_and_per_step(tmp_path):
    cfg = load_config(overrides=[f"out={tmp_path / 'run'}", f"data.cache_dir={tmp_path / 'cache'}",
                                 "data.max_chars=60000", "data.tokenizer=byte", "data.seq_len=32",
                                 "train.batch_size=2", "train.max_steps=1", "train.progress=false",
                                 "train.tensorboard=false", "model.overrides={hidden_size: 64, n_layers: 2, "
                                 "n_heads: 2, n_kv_heads: 1, head_dim: 32, intermediate_size: 128}"])
    Trainer(cfg).fit()
    out = tmp_path / "saved"
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "saved_for_backward.py"), "--model",
                           str(tmp_path / "run"), "--recipes", "bf16,averis", "--tokens", "64", "--out", str(out)],
                          capture_output=True, text=True, timeout=600, cwd=REPO)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    [path] = out.glob("saved_*_cpu.json")
    result = json.loads(path.read_text())
    assert result["commit"] and result["device"].startswith("cpu") and "saved_for_backward.py" in result["command"]
    bf16, averis = result["rows"]
    # 2 layers of width 64: a token saves at least the inputs of each layer's 4 distinct linear inputs in bf16
    assert 2 * 4 * 64 * 2 <= averis["per_token_total"] and 2 * 4 * 64 * 2 <= bf16["per_token_total"]
    # bf16 autocast saves bf16 copies of the 2 layers' weights (a per-step cost); averis's layers keep none
    weights = 2 * (4 * 64 * 64 + 3 * 64 * 128)
    assert bf16["bytes_fixed"]["bfloat16"] >= weights * 2 > averis["bytes_fixed"]["bfloat16"]
    assert "| **total** |" in done.stdout
