"""benchmarks/gpu: bundle.sh (files larger than one device call travel as parts, one a call, and come out whole),
bg.sh's watch (the device-session protocol) and every GPU script parsing."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "gpu" / "bundle.sh"
TOOLS = ("bash", "tar", "xz", "split", "sha256sum")
pytestmark = pytest.mark.skipif(any(shutil.which(t) is None for t in TOOLS),
                                reason="needs " + ", ".join(TOOLS))


def bundle(cwd: Path, *args: str, stash: Path, part_size: str = "40k") -> subprocess.CompletedProcess:
    env = {**os.environ, "BUNDLE_STASH": str(stash), "PART_SIZE": part_size}
    return subprocess.run(["bash", str(SCRIPT), *args], cwd=cwd, env=env, capture_output=True, text=True)


def packed(tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    """A checkout with two paths to carry: incompressible bytes (so the bundle needs several parts) and a folder."""
    here = tmp_path / "here"
    files = {".whl/a.whl": os.urandom(100_000), ".carry/eval/task.jsonl": b'{"q": 1}\n' * 1000}
    for name, data in files.items():
        (here / name).parent.mkdir(parents=True, exist_ok=True)
        (here / name).write_bytes(data)
    r = bundle(here, "pack", ".whl", ".carry/eval", stash=tmp_path / "unused")
    assert r.returncode == 0, r.stderr
    return here, files


def carry(here: Path, there: Path, part: str) -> None:
    """What one device call brings: this part with SHA256 and PARTS, replacing whatever .carry/bundle held there."""
    dest = there / ".carry" / "bundle"
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    for name in (part, "SHA256", "PARTS"):
        shutil.copy2(here / ".carry" / "bundle" / name, dest / name)


def test_parts_carried_one_a_call_unpack_to_the_same_files(tmp_path):
    here, files = packed(tmp_path)
    parts = sorted(p.name for p in (here / ".carry" / "bundle").glob("part_*"))
    assert len(parts) >= 3 and (here / ".carry" / "bundle" / "PARTS").read_text().strip() == str(len(parts))
    there, stash = tmp_path / "there", tmp_path / "stash"
    for i, part in enumerate(parts[:-1]):
        carry(here, there, part)
        r = bundle(there, "stash", stash=stash)
        assert r.returncode == 0 and f"{i + 1} of {len(parts)} part(s) stashed" in r.stdout
    carry(here, there, parts[-1])
    r = bundle(there, "unpack", stash=stash)
    assert r.returncode == 0, r.stderr
    for name, data in files.items():
        assert (there / name).read_bytes() == data


def test_unpack_refuses_missing_or_damaged_parts_in_one_line(tmp_path):
    here, _ = packed(tmp_path)
    parts = sorted(p.name for p in (here / ".carry" / "bundle").glob("part_*"))
    there, stash = tmp_path / "there", tmp_path / "stash"
    carry(here, there, parts[-1])  # the first parts were never stashed
    r = bundle(there, "unpack", stash=stash)
    assert r.returncode == 1 and "parts missing (stash them first)" in r.stderr
    assert not (there / ".whl").exists()

    for part in parts[:-1]:
        carry(here, there, part)
        assert bundle(there, "stash", stash=stash).returncode == 0
    damaged = stash / parts[0]
    damaged.write_bytes(b"x" + damaged.read_bytes()[1:])
    carry(here, there, parts[-1])
    r = bundle(there, "unpack", stash=stash)
    assert r.returncode == 1 and "checksum differs" in r.stderr
    assert not (there / ".whl").exists()


def test_pack_names_a_missing_path(tmp_path):
    r = bundle(tmp_path, "pack", ".carry/gguf", stash=tmp_path / "stash")
    assert r.returncode == 2 and r.stderr.strip() == "bundle.sh pack: .carry/gguf does not exist"


@pytest.mark.parametrize("script", sorted(p.relative_to(SCRIPT.parent).as_posix()
                                          for p in SCRIPT.parent.rglob("*.sh")))
def test_every_gpu_script_parses(script):
    """The GPU scripts run only on the device machine, where a syntax error costs a call: parse each one here."""
    r = subprocess.run(["bash", "-n", str(SCRIPT.parent / script)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def _bg_watch(name: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT.parent / "bg.sh"), "watch", "30", name], capture_output=True,
                          text=True, timeout=60)


def test_watching_a_job_this_machine_never_started_fails_at_once():
    # a fresh machine (the held one went back): exit 3 now rather than watch nothing for the call's whole limit
    got = _bg_watch(f"never_started_{os.getpid()}")  # a name no session uses: /tmp/bg is shared
    assert got.returncode == 3
    assert "never started on this machine" in got.stderr and "\n" not in got.stderr.strip()


def test_watching_a_finished_job_reports_its_exit_status():
    name, bg = f"finished_{os.getpid()}", Path("/tmp/bg")
    bg.mkdir(exist_ok=True)
    (bg / f"{name}.log").write_text("working\n")
    (bg / f"{name}.rc").write_text("0\n")
    try:
        got = _bg_watch(name)
    finally:
        (bg / f"{name}.log").unlink()
        (bg / f"{name}.rc").unlink()
    assert got.returncode == 0 and f"{name}: ended, rc 0" in got.stdout
