"""Two CPU processes (torchrun, gloo): DDP and FSDP2 match one process with two micro-batches; FSDP2 resumes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

MODEL = ("model.overrides={hidden_size: 64, n_layers: 2, n_heads: 2, n_kv_heads: 1, head_dim: 32, "
         "intermediate_size: 128}")


def common(tmp_path: Path) -> list[str]:
    sets = ["data.max_chars=60000", "data.tokenizer=byte", "data.seq_len=32", "train.batch_size=4",
            "train.eval_every=2", "train.eval_batches=1", "train.tensorboard=false", "train.ckpt_every=2",
            f"data.cache_dir={tmp_path / 'cache'}", MODEL]
    return ["--no-progress", *(arg for s in sets for arg in ("--set", s))]


def run(args: list[str], world: int = 1, ok: bool = True) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={world}"]
    cmd = [*(launcher if world > 1 else [sys.executable]), "-m", "averis", "train", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert (done.returncode == 0) == ok, done.stdout[-2000:] + done.stderr[-3000:]
    return done.stdout + done.stderr


def losses(folder: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (folder / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_ddp_and_fsdp2_match_one_process_and_fsdp2_resumes(tmp_path):
    base = common(tmp_path)
    run(["--out", str(tmp_path / "single"), "--max-steps", "4", "--set", "train.grad_accum=2", *base])
    run(["--out", str(tmp_path / "ddp"), "--max-steps", "4", *base], world=2)
    fsdp = ["--out", str(tmp_path / "fsdp"), "--set", "train.distributed=fsdp", *base]
    run([*fsdp, "--max-steps", "4", "--set", "train.time_limit_s=1e-9"], world=2)  # stops after step 1
    assert json.loads((tmp_path / "fsdp" / "summary.json").read_text())["status"] == "stopped"
    run([*fsdp, "--max-steps", "4", "--resume"], world=2)
    single, ddp, fsdp = (losses(tmp_path / n) for n in ("single", "ddp", "fsdp"))
    assert len(single) == len(ddp) == len(fsdp) == 4
    assert ddp == pytest.approx(single, rel=1e-5)   # rank r draws global micro-batch r: the same windows
    assert fsdp == pytest.approx(single, rel=1e-5)  # ... and the FSDP2 run went through a resume at step 1
    summary = json.loads((tmp_path / "fsdp" / "summary.json").read_text())
    assert summary["world"] == 2 and summary["step"] == 4


@pytest.mark.slow
def test_two_ranks_draw_what_one_process_draws(tmp_path):
    """Stochastic rounding under DDP: rank r takes every second draw of the layers' counters from r
    (averis.nn.spread_streams), so two ranks with one micro-batch each make the draws of one process with two
    micro-batches over the same windows, and the runs agree bit for bit (2 ranks: each all-reduce is one
    addition, the same as accumulating two halves). Before, every rank drew rank 0's noise."""
    from averis.train.checkpoint import latest, load_model_file

    base = [*common(tmp_path), "--recipe", "averis", "--set", "train.eval_every=0"]
    run(["--out", str(tmp_path / "single"), "--max-steps", "3", "--set", "train.grad_accum=2", *base])
    run(["--out", str(tmp_path / "ddp"), "--max-steps", "3", *base], world=2)
    assert losses(tmp_path / "ddp") == losses(tmp_path / "single")
    saved = {n: load_model_file(latest(tmp_path / n / "checkpoints") / "model.safetensors") for n in ("single", "ddp")}
    counters = [k for k in saved["single"] if k.endswith("averis_rng")]
    assert counters and all(torch.equal(saved["single"][k], saved["ddp"][k]) for k in counters)
    assert int(saved["ddp"][counters[0]][1]) == 6  # 3 steps x 2 micro-batches, in one process's terms


@pytest.mark.slow
def test_cuda_graph_under_fsdp2_is_refused_in_one_line(tmp_path):
    out = run(["--out", str(tmp_path / "fsdp"), "--max-steps", "1", "--set", "train.distributed=fsdp",
               "--set", "train.cuda_graph=true", *common(tmp_path)], world=2, ok=False)
    assert "train.cuda_graph does not run under FSDP2" in out
    assert not (tmp_path / "cache").exists(), "refused before tokenizing"


@pytest.mark.slow
def test_two_nodes_through_a_rendezvous_match_one_process(tmp_path):
    """The multi-node launch of docs/training.md on one machine: two torchrun agents (--nnodes 2, node ranks 0
    and 1, one process each, so both processes have LOCAL_RANK 0) meet at one c10d rendezvous and train over
    a shared --out and cache; the losses are those of one process with two micro-batches."""
    import socket

    base = common(tmp_path)
    run(["--out", str(tmp_path / "single"), "--max-steps", "3", "--set", "train.grad_accum=2", *base])
    with socket.socket() as s:  # a free port for the rendezvous, taken just before the agents start (other
        s.bind(("127.0.0.1", 0))  # tests, e.g. under pytest-xdist, open ports meanwhile)
        port = s.getsockname()[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    agents = [subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--node-rank", str(node), "--nproc-per-node",
         "1", "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", "nodes-test",
         "-m", "averis", "train", "--out", str(tmp_path / "nodes"), "--max-steps", "3", *base],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env) for node in (0, 1)]
    try:
        outs = [a.communicate(timeout=300)[0] for a in agents]
    finally:  # a failed agent leaves the other waiting at the rendezvous
        for a in agents:
            a.kill()
    assert all(a.returncode == 0 for a in agents), "\n".join(o[-2000:] for o in outs)
    assert losses(tmp_path / "nodes") == pytest.approx(losses(tmp_path / "single"), rel=1e-5)
    assert json.loads((tmp_path / "nodes" / "summary.json").read_text())["world"] == 2
