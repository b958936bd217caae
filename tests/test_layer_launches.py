"""benchmarks/layer_launches.py on the CPU: the quantized layer's GPU dispatch path (Triton interpreted) launches no
host synchronisation (it must replay from a CUDA graph), and its kernels are seen inside the custom ops."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_no_host_sync_and_the_kernels_inside_the_custom_ops(tmp_path):
    pytest.importorskip("triton")
    out = tmp_path / "launches.json"
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "layer_launches.py"), "nvfp4", "averis",
                           "averis_adaptive", "--tokens", "32", "--shape", "64x32", "--json", str(out)],
                          capture_output=True, text=True, timeout=600, cwd=REPO)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    counts = json.loads(out.read_text())["recipes"]
    for recipe, c in counts.items():
        assert c["host_syncs"] == 0, recipe
        assert c["forward"] >= 5 and c["backward"] >= 5, (recipe, c)
        # the quantizers inside the custom ops are counted, not just the custom op
        assert c["triton_forward"] > 0 and c["triton_backward"] > 0, (recipe, c)
    # Averis adds its mean path on top of NVFP4's launches; the adaptive split adds its decision
    total = {r: c["forward"] + c["backward"] for r, c in counts.items()}
    assert total["nvfp4"] < total["averis"] < total["averis_adaptive"]
