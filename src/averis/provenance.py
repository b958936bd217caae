"""Where a result came from: the commit of the code that made it (every result file names it).

``AVERIS_COMMIT`` wins: a GPU machine gets a copy of the working tree whose git metadata (if any) need not be
the commit being measured, so the scripts that run there set it.  Otherwise the checkout's short hash, with
"-dirty" when tracked files have uncommitted changes, or "unknown" outside a git checkout.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]  # src/averis/provenance.py -> the checkout (if installed editable)


def commit() -> str:
    if os.environ.get("AVERIS_COMMIT"):
        return os.environ["AVERIS_COMMIT"]
    try:
        head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                              text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    if head.returncode or not head.stdout.strip():
        return "unknown"
    return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def device_name(device) -> str:
    """The device a result ran on: the GPU's model ("NVIDIA H200"), or "cpu" with the CPU's model and threads."""
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = ""
    try:
        with open("/proc/cpuinfo") as info:
            model = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), "")
    except OSError:
        pass
    return f"cpu{' ' + model if model else ''}, {torch.get_num_threads()} threads"


def slug(name: str) -> str:
    """A device (or any) name as a file-name part: "NVIDIA H200" -> "nvidia_h200"."""
    return re.sub(r"[^a-z0-9]+", "_", (name or "unknown").lower()).strip("_")
