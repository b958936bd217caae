"""benchmarks/multigpu.py end to end on CPU (--cpu-smoke: gloo, 2 processes, a tiny model, 2 steps)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "benchmarks" / "multigpu.py"), *args], capture_output=True,
                          text=True, timeout=600, cwd=REPO)


@pytest.mark.slow
def test_multigpu_cpu_smoke_rows_and_loss_check(tmp_path):
    done = bench("--cpu-smoke", "--recipes", "averis,averis_global", "--out", str(tmp_path / "out"),
                 "--workdir", str(tmp_path / "work"))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads((tmp_path / "out" / "multigpu_cpu.json").read_text())
    assert result["device"] == "cpu" and result["commit"] and "--cpu-smoke" in result["command"]
    kinds = {(r["recipe"], r["mode"], r["world_size"]) for r in result["rows"]}
    assert kinds == {("averis", "one", 1), ("averis", "ddp", 2), ("averis_global", "ddp", 2), ("averis", "fsdp", 2)}
    for r in result["rows"]:
        # weak scaling (the default): every process gets the same 4 x 32 tokens a step
        assert r["tokens_per_s"] > 0 and r["tokens_per_step"] == 128 * r["world_size"] and len(r["losses"]) == 3
        assert r["scaling"] == "weak" and r["compile"] is False  # auto: no torch.compile on the CPU
        assert r["speedup_vs_one"] > 0 and not r["graphed"]
    curves = result["loss_check"]["curves"]
    assert set(curves) == {"averis-x1", "averis-x2", "averis_global-x2", "averis-x1-seed1"}
    assert all(len(c) == 3 for c in curves.values())
    # the same windows on 1 and 2 processes: the first step's loss (before any update) agrees closely ...
    assert curves["averis-x2"][0] == pytest.approx(curves["averis-x1"][0], rel=1e-3)
    # ... and the global mean is a different computation from the per-rank one
    assert curves["averis_global-x2"] != curves["averis-x2"]
    assert curves["averis-x1-seed1"] != curves["averis-x1"]  # the seed-noise yardstick is another run
    assert set(result["loss_check"]["summary"]) == {"averis", "averis_global", "seed noise"}
    assert "| tiny | averis | ddp | 2 | no |" in (tmp_path / "out" / "multigpu_cpu.md").read_text()

    # assemble: the same result from the work folder alone (what a run stopped before its end leaves)
    refused = bench("assemble", str(tmp_path / "work"), "--out", str(tmp_path / "again"), "--meta", "device=cpu")
    assert refused.returncode == 2 and "--meta" in refused.stdout and "commit" in refused.stdout
    done = bench("assemble", str(tmp_path / "work"), "--out", str(tmp_path / "again"), "--meta", "device=cpu",
                 "--meta", "commit=abc", "--meta", "command=multigpu.py --cpu-smoke", "--meta", "warmup=1")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    again = json.loads((tmp_path / "again" / "multigpu_cpu.json").read_text())
    assert again["commit"] == "abc" and again["steps"] == 2 and again["scaling"] == "weak"
    key = lambda r: (r["recipe"], r["mode"])  # noqa: E731
    assert sorted(map(key, again["rows"])) == sorted(map(key, result["rows"]))
    assert again["loss_check"]["summary"] == result["loss_check"]["summary"]
    pair = result["loss_check"]["summary"]["averis"]
    assert pair["val_diff"] == pair["val_many"] - pair["val_one"]  # the validation losses of the two runs

    # plot: the summary, the table and the plots again from a result JSON, under that file's own name
    renamed = tmp_path / "again" / "renamed.json"
    stale = again | {"loss_check": again["loss_check"] | {"summary": {}}}
    renamed.write_text(json.dumps(stale))
    done = bench("plot", str(renamed))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert json.loads(renamed.read_text())["loss_check"]["summary"] == result["loss_check"]["summary"]
    assert (tmp_path / "again" / "renamed.md").read_text() == (tmp_path / "again" / "multigpu_cpu.md").read_text()


def test_multigpu_refuses_without_a_gpu_or_with_unknown_names(tmp_path):
    import torch

    done = bench("--out", str(tmp_path), "--recipes", "nope")
    assert done.returncode == 2
    if not torch.cuda.is_available():
        assert "no CUDA GPU here; --cpu-smoke" in done.stdout
    else:
        assert "unknown recipe(s) ['nope']" in done.stdout


def test_result_files_name_the_device_the_same_way_everywhere():
    """Every benchmark names its result file after the device through provenance.slug."""
    from averis.provenance import slug

    assert slug("NVIDIA H200") == "nvidia_h200"
    assert slug("NVIDIA H100 80GB HBM3") == "nvidia_h100_80gb_hbm3"  # the committed kernels_* / step_* files
    assert slug("cpu AMD EPYC 7B13, 2 threads") == "cpu_amd_epyc_7b13_2_threads"
    assert slug(None) == "unknown"
