"""The device-session shell protocol (benchmarks/gpu/bg.sh, session.sh) on this machine: no GPU needed."""

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

def _run(args, env=None):
    return subprocess.run(["bash", *args], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})


def test_watching_a_job_this_machine_never_started_fails_at_once():
    # a name no session uses: /tmp/bg is shared with whatever else runs here
    name = f"never_started_{os.getpid()}"
    got = _run(["benchmarks/gpu/bg.sh", "watch", "30", name])
    assert got.returncode == 3
    assert "never started on this machine" in got.stderr and "\n" not in got.stderr.strip()


def test_watching_a_finished_job_reports_its_exit_status():
    name = f"finished_{os.getpid()}"
    bg = Path("/tmp/bg")
    bg.mkdir(exist_ok=True)
    (bg / f"{name}.log").write_text("working\n")
    (bg / f"{name}.rc").write_text("0\n")
    try:
        got = _run(["benchmarks/gpu/bg.sh", "watch", "30", name])
    finally:
        (bg / f"{name}.log").unlink()
        (bg / f"{name}.rc").unlink()
    assert got.returncode == 0 and f"{name}: ended, rc 0" in got.stdout
