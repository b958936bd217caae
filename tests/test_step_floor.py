"""benchmarks/step_floor.py: the quantization bytes of a step, counted by hand for the tiny Qwen3 preset (4 layers,
hidden 128, 4 heads and 2 KV heads of 32, FFN 384), and the floor against a measured step."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("step_floor", REPO / "benchmarks" / "step_floor.py")
step_floor = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(step_floor)

T = 256  # tokens a step
# per layer: X read by q/k/v (128, once: one shared input), o_proj (128), gate/up (128, once), down_proj (384)
X = 4 * (128 + 128 + 128 + 384)
DY = 4 * (128 + 64 + 64 + 128 + 384 + 384 + 128)  # each linear's output gradient
W = 4 * (128 * 128 + 2 * 64 * 128 + 128 * 128 + 3 * 384 * 128)  # weights, fp32 (4 bytes)


def test_vanilla_nvfp4_and_averis_move_the_same_bytes():
    # X, dY (BF16): one statistics read + two layouts (read + BF16 write each) = 2 + 2 * (2 + 2) = 10 bytes
    # W (fp32): amax 4 + two layouts of (4 + 2) = 16 bytes
    nv = step_floor.step_bytes("nvfp4", "tiny", T, 4096)
    assert nv == {"x": T * X * 10, "dy": T * DY * 10, "w": W * 16, "linears": 28}
    # Averis's column statistics replace the amax read: the same bytes (the mean terms are vectors)
    assert step_floor.step_bytes("averis", "tiny", T, 4096) == nv
    assert step_floor.step_bytes("nvfp4-torch", "tiny", T, 4096) == nv  # bench_step's naive path: the same floor
    assert step_floor.step_bytes("bf16", "tiny", T, 4096) == {"x": 0, "dy": 0, "w": 0, "linears": 0}


def test_hadamard_adds_a_statistics_read_and_tiles_quantize_w_once():
    # nvidia without its tail: X and dY need their amax and the amax of H(x) for the wgrad operand: 2 * 2 + 8 = 12;
    # W in 16x16 tiles serves fprop and dgrad with one pass: 4 + (4 + 2) = 10
    assert step_floor.step_bytes("nvidia_notail", "tiny", T, 4096) == {
        "x": T * X * 12, "dy": T * DY * 12, "w": W * 10, "linears": 28}
    # averis_rht: column statistics and the amax of H(x - mean) for X and dY; W as nvfp4's
    assert step_floor.step_bytes("averis_rht", "tiny", T, 4096) == {
        "x": T * X * 12, "dy": T * DY * 12, "w": W * 16, "linears": 28}
    # Metis's randomized SVD is not modelled
    metis = step_floor.step_bytes("metis", "tiny", T, 4096)
    assert metis["x"] is None and metis["linears"] == 28


def test_the_floor_against_a_measured_step(tmp_path):
    step = {"device": "Test GPU", "preset": "tiny", "commit": "abc1234", "batch": 1, "seq": T,
            "rows": [{"recipe": "bf16", "graph_ms": 1.0}, {"recipe": "nvfp4", "graph_ms": 2.0}]}
    (tmp_path / "step.json").write_text(json.dumps(step))
    run = [sys.executable, str(REPO / "benchmarks" / "step_floor.py"), "--step", str(tmp_path / "step.json"),
           "--vocab", "4096"]
    done = subprocess.run([*run, "--bandwidth-gbps", "1", "--out", str(tmp_path)], capture_output=True, text=True,
                          timeout=300, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    res = json.loads((tmp_path / "step_floor_test_gpu_tiny.json").read_text())
    nv = next(r for r in res["rows"] if r["recipe"] == "nvfp4")
    extra_ms = (T * X * 10 + T * DY * 10 + W * 16) / 1e9 * 1e3  # bytes over 1 GB/s
    assert nv["floor_extra_ms"] == extra_ms and nv["floor_ms"] == 1.0 + extra_ms
    assert nv["above_floor_ms"] == 2.0 - (1.0 + extra_ms)
    assert res["step_commit"] == "abc1234" and res["copy_GBps"] == 1
    done = subprocess.run(run, capture_output=True, text=True, timeout=300, cwd=REPO)
    assert done.returncode != 0 and "give the copy bandwidth" in done.stderr and "Traceback" not in done.stderr


def test_a_preset_name_with_a_dot_keeps_it_in_the_file_name(tmp_path):
    step = {"device": "Test GPU", "preset": "qwen3-0.6b", "commit": "abc1234", "batch": 1, "seq": 16,
            "rows": [{"recipe": "bf16", "graph_ms": 1.0}]}
    (tmp_path / "step.json").write_text(json.dumps(step))
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "step_floor.py"), "--step",
                           str(tmp_path / "step.json"), "--bandwidth-gbps", "1000", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=300, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "step_floor_test_gpu_qwen3-0.6b.json").is_file()
    assert (tmp_path / "step_floor_test_gpu_qwen3-0.6b.md").is_file()
