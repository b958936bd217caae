"""bench_step.py --combine: the rows of two runs of one setup joined into one result, the ratios recomputed from
the joined rows (a run cut short by its time limit is finished by a second run of the missing recipes)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SETUP = {"device": "NVIDIA H200", "preset": "bench", "commit": "abc1234", "torch": "2.11", "triton": "3.6",
         "model": "qwen3 'bench' preset", "batch": 8, "seq": 1024, "compile": True, "steps": 10, "exact_gemm": False}


def _run(tmp_path: Path, *files: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_step.py"), "--combine",
                           *map(str, files), "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=300, cwd=REPO)


def _write(path: Path, rows: list[dict], **setup) -> Path:
    path.write_text(json.dumps({**SETUP, **setup, "command": f"bench_step.py ({path.name})", "rows": rows}))
    return path


def test_combine_joins_rows_and_recomputes_the_ratios(tmp_path):
    a = _write(tmp_path / "a.json", [{"recipe": "nvfp4", "eager_ms": 150.0, "graph_ms": 15.0, "graph_vs_nvfp4": 1.0},
                                     {"recipe": "bf16", "eager_ms": 30.0, "graph_ms": 10.0}])
    b = _write(tmp_path / "b.json", [{"recipe": "metis", "eager_ms": 1400.0, "graph_ms": 225.0,
                                      "graph_vs_nvfp4": 99.0}])  # a stale ratio from its own run: recomputed
    done = _run(tmp_path, a, b)
    assert done.returncode == 0, done.stderr[-2000:]
    res = json.loads((tmp_path / "out" / "step_nvidia_h200_bench.json").read_text())
    assert [r["recipe"] for r in res["rows"]] == ["nvfp4", "bf16", "metis"]
    assert res["commit"] == "abc1234" and res["preset"] == "bench" and res["device"] == "NVIDIA H200"
    assert res["command"] == ["bench_step.py (a.json)", "bench_step.py (b.json)"]
    metis = res["rows"][2]
    assert metis["graph_vs_nvfp4"] == 225.0 / 15.0 and metis["graph_vs_bf16"] == 225.0 / 10.0
    assert metis["graph_speedup"] == 1400.0 / 225.0
    assert "| metis | 1400.0 | 225.0 |" in done.stdout


def test_combine_refuses_runs_of_different_setups_or_a_recipe_twice(tmp_path):
    a = _write(tmp_path / "a.json", [{"recipe": "nvfp4", "graph_ms": 15.0}])
    b = _write(tmp_path / "b.json", [{"recipe": "metis", "graph_ms": 225.0}], commit="def5678")
    done = _run(tmp_path, a, b)
    assert done.returncode != 0
    assert "differs from" in done.stderr and "commit" in done.stderr and "Traceback" not in done.stderr
    c = _write(tmp_path / "c.json", [{"recipe": "nvfp4", "graph_ms": 16.0}])
    done = _run(tmp_path, a, c)
    assert done.returncode != 0 and "'nvfp4' is in more than one file" in done.stderr
    done = _run(tmp_path, a, tmp_path / "missing.json")
    assert done.returncode != 0 and "no such file" in done.stderr and "Traceback" not in done.stderr
