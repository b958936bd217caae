"""The split diagnostic (averis fidelity --split): per layer and site, what the mean split changes."""

import json
import math

import pytest
import torch

from averis.analysis.split_diag import _SourceAccumulator, site_summary, split_diagnostic
from averis.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")


def test_source_measurements_on_a_hand_made_tensor():
    """Two tokens 10 + d and 10 - d: the mean is 10, the residual +-d, so every block's amax shrinks 11 -> 1."""
    d = torch.linspace(-1, 1, 16)
    acc = _SourceAccumulator()
    acc.add(torch.stack([10 + d, 10 - d]), threshold=0.3)
    r = acc.result()
    assert r["amax"] == 11.0 and r["amax_residual"] == 1.0 and r["adaptive_splits"] == 1.0
    assert math.isclose(r["block_inflation"], 11.0, rel_tol=1e-12)
    assert math.isclose(r["mean_ratio"], 10 / math.sqrt(100 + float(d.square().mean())), rel_tol=1e-6)
    assert r["qerr_split"] < r["qerr"]


def test_zero_mean_outliers_do_not_split():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 32, generator=g)
    x[3, 5], x[40, 17] = 50.0, -50.0
    acc = _SourceAccumulator()
    acc.add(x, threshold=0.3)
    r = acc.result()
    assert r["adaptive_splits"] == 0.0 and r["amax_ratio"] > 0.95 and r["mean_ratio"] < 0.2


def test_diagnostic_on_a_tiny_model():
    from averis.models.qwen3 import Qwen3ForCausalLM, preset

    torch.manual_seed(0)
    model = Qwen3ForCausalLM(preset("tiny", vocab_size=128, n_layers=2)).eval()
    batches = [torch.randint(0, 128, (2, 32)) for _ in range(2)]
    result = split_diagnostic(model, batches, loss_recipes=("nvfp4", "averis"))
    assert len(result["layers"]) == 2 * 7 and set(result["losses"]) == {"nvfp4", "averis"}
    for r in result["layers"].values():
        assert r["site"] in ("attn_in", "o_proj", "mlp_in", "down_proj") and r["block"] in (0, 1)
        assert 0 < r["x"]["qerr"] < 1 and 0 < r["dy"]["qerr_split"] < 1
        assert r["nvfp4"]["y"] > 0 and r["averis"]["dw"] > 0
    assert set(site_summary(result)) == {"attn_in", "o_proj", "mlp_in", "down_proj"}
    assert not any(type(m).__name__ == "QuantLinear" for m in model.modules())  # the model is given back plain


def test_cli_split_on_a_trainer_checkpoint(tmp_path):
    from test_analysis_cli import tiny_config, write_checkpoint

    folder = write_checkpoint(tiny_config(tmp_path), 1, seed=0)
    out = tmp_path / "diag"
    assert main(["fidelity", str(folder), "--split", "--out", str(out), "--tokens", "64", "--seq-len", "32"]) == 0
    data = json.loads((out / "split_diag.json").read_text())
    meta = data["meta"]
    assert meta["device"].startswith("cpu" if not torch.cuda.is_available() else "") and meta["device"]
    assert meta["commit"] and meta["command"].startswith("averis fidelity ")
    assert "--split" in meta["command"] and set(data["summary"]) == {"attn_in", "o_proj", "mlp_in", "down_proj"}
    text = (out / "split_diag.md").read_text()
    assert "block-scale inflation" in text and "nvfp4 -> averis" in text and (out / "split_diag.png").is_file()


def test_cli_split_refuses_recipes(tmp_path, capsys):
    assert main(["fidelity", "smollm2-135m", "--split", "--recipes", "nvfp4", "--out", str(tmp_path)]) == 2
    assert "drop --forward-only and --recipes" in capsys.readouterr().err
