"""The GPU benchmark scripts end to end on the Triton interpreter, so a device session does not spend its minutes on a
broken script: bench_kernels.py --cpu-smoke (the step-shapes section: per-call kernel times at the training step's
shapes, their floor, the token sums' second launch, the columnwise suspects, the column-tile sweep) and
gpu/diag/tree_order.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def test_step_shapes_section_on_the_interpreter():
    pytest.importorskip("triton")
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_kernels.py"), "--cpu-smoke"],
                          capture_output=True, text=True, timeout=600, cwd=REPO,
                          env={**os.environ, "TRITON_INTERPRET": "1"})
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    table = [line for line in done.stdout.splitlines() if line.startswith("| smoke | 256 x 48 |")]
    assert len(table) == 1, done.stdout[-2000:]
    cells = table[0].strip("| ").split(" | ")
    assert len(cells) == 17  # preset, shape, copy, 12 kernels, the two best tiles
    assert cells[-2].startswith("stats ") and cells[-1].startswith("tsum ")
    assert "x)" in cells[4]  # column_stats with its gap to the floor
    # the transpose-then-rowwise route gives the columnwise quantization's bits (same SR noise index)
    assert "transpose + rowwise == columnwise, bit for bit: True" in done.stdout, done.stdout[-2000:]


def test_tree_order_diagnostic_on_the_interpreter():
    """benchmarks/gpu/diag/tree_order.py --cpu-smoke: its adjacent-order variant equals the library's kernel and
    reference, and its halving-order variant equals its own reference, bit for bit."""
    pytest.importorskip("triton")
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu" / "diag" / "tree_order.py"), "--cpu-smoke"],
                          capture_output=True, text=True, timeout=600, cwd=REPO,
                          env={**os.environ, "TRITON_INTERPRET": "1"})
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert ("adjacent == library kernel: True; == reference: True; halving == its reference: True"
            in done.stdout), done.stdout
