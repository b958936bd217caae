"""The trainer: a tiny run, exact resume, divergence stop, callbacks, clear errors for bad checkpoints."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import torch

from averis.train import Trainer, load_config
from averis.train.checkpoint import latest, load_model_file
from averis.train.quant import recipe_names

TINY_MODEL = "model.overrides={hidden_size: 64, n_layers: 2, n_heads: 2, n_kv_heads: 1, head_dim: 32, " \
             "intermediate_size: 128}"


def tiny(tmp_path: Path, name: str, *extra: str):
    """A ~60k-parameter model on 60 kB of bundled text, byte tokens: a step takes milliseconds."""
    return load_config(overrides=[f"out={tmp_path / name}", f"data.cache_dir={tmp_path / 'cache'}",
                                  "data.max_chars=60000", "data.tokenizer=byte", "data.seq_len=32",
                                  "train.batch_size=4", "train.max_steps=8", "train.eval_every=4",
                                  "train.eval_batches=1", "train.ckpt_every=4", "train.progress=false",
                                  "train.tensorboard=false", "optim.warmup_steps=2", TINY_MODEL, *extra])


def test_tiny_run_learns_and_writes_its_files(tmp_path):
    cfg = tiny(tmp_path, "run", "train.max_steps=30", "optim.lr=3e-3", "train.ckpt_every=10")
    summary = Trainer(cfg).fit()
    out = Path(cfg.out)
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert summary["status"] == "done" and summary["step"] == 30
    assert [r["step"] for r in records] == list(range(1, 31))
    assert records[-1]["loss"] < records[0]["loss"] - 1.0  # byte-level loss starts near ln(257) = 5.55
    assert "val_loss" in records[3] and summary["val_loss"] is not None
    summary = json.loads((out / "summary.json").read_text())
    assert (out / "config.yaml").is_file() and summary["step"] == 30
    assert "gpu_peak_gib" not in summary  # a CPU run holds no GPU memory

    # every run names where it came from: the device, the code, the command
    assert summary["device"].startswith("cpu") and summary["commit"] and summary["command"]
    assert sorted(p.name for p in (out / "checkpoints").glob("step_*")) == ["step_00000020", "step_00000030"]
    assert load_model_file(latest(out / "checkpoints") / "model.safetensors")["lm_head.weight"].shape == (257, 64)


def _resume_matches(tmp_path: Path, recipe: str, steps: int):
    sets = [f"recipe={recipe}", f"train.max_steps={steps}", f"train.eval_every={steps // 2}"]
    straight = Trainer(tiny(tmp_path, "a", *sets)).fit()
    first = Trainer(tiny(tmp_path, "b", *sets, "train.time_limit_s=1e-9")).fit()
    assert first["status"] == "stopped" and first["step"] == 1
    resumed = Trainer(tiny(tmp_path, "b", *sets), resume=True).fit()
    assert resumed["last_loss"] == straight["last_loss"] and resumed["val_loss"] == straight["val_loss"]
    a = load_model_file(tmp_path / f"a/checkpoints/step_{steps:08d}/model.safetensors")
    b = load_model_file(tmp_path / f"b/checkpoints/step_{steps:08d}/model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    losses = [[json.loads(x)["loss"] for x in (tmp_path / r / "metrics.jsonl").read_text().splitlines()]
              for r in "ab"]
    assert losses[0] == losses[1]  # the resumed log has each step once, with the same values


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_gpu_run_records_its_peak_gpu_memory(tmp_path):
    cfg = tiny(tmp_path, "run", "train.max_steps=2", "train.device=cuda", "recipe=averis")
    Trainer(cfg).fit()
    summary = json.loads((Path(cfg.out) / "summary.json").read_text())
    assert 0 < summary["gpu_peak_gib"] == round(torch.cuda.max_memory_reserved() / 2**30, 2)


def test_resume_is_bit_exact(tmp_path):
    _resume_matches(tmp_path, "bf16", steps=8)


@pytest.mark.skipif("nvfp4" not in recipe_names(), reason="averis.recipes has no nvfp4")
def test_resume_is_bit_exact_with_stochastic_rounding(tmp_path):
    """nvfp4 draws stochastic-rounding noise for the gradients: the quantizer generators are checkpointed."""
    _resume_matches(tmp_path, "nvfp4", steps=4)


class PoisonAt:
    """A callback that sets a weight to NaN after a given step (to force a divergence)."""

    def __init__(self, step: int):
        self.step, self.seen = step, []

    def on_step_end(self, trainer, step, metrics):
        self.seen.append(step)
        if step == self.step:
            with torch.no_grad():
                trainer.raw_model.model.norm.weight.fill_(float("nan"))


def test_nan_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path):
    cb = PoisonAt(5)
    summary = Trainer(tiny(tmp_path, "nan"), callbacks=[cb]).fit()
    assert summary["status"] == "diverged" and "loss is nan" in summary["reason"] and summary["step"] == 5
    assert cb.seen == [1, 2, 3, 4, 5]
    good = latest(tmp_path / "nan" / "checkpoints")
    assert good.name == "step_00000004"
    assert all(torch.isfinite(t).all() for t in load_model_file(good / "model.safetensors").values())


def test_existing_run_needs_resume(tmp_path):
    Trainer(tiny(tmp_path, "r", "train.max_steps=4")).fit()
    with pytest.raises(ValueError, match="--resume"):
        Trainer(tiny(tmp_path, "r", "train.max_steps=4"))


def test_resume_with_another_model_is_refused(tmp_path):
    Trainer(tiny(tmp_path, "r", "train.max_steps=4")).fit()
    with pytest.raises(ValueError, match="different 'model' config"):
        Trainer(tiny(tmp_path, "r", "train.max_steps=8", "model.overrides.n_layers=3"), resume=True)


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
    Trainer(tiny(tmp_path, "r", "train.max_steps=4")).fit()
    ckpt = latest(tmp_path / "r" / "checkpoints")
    (ckpt / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="corrupt checkpoint"):
        Trainer(tiny(tmp_path, "r", "train.max_steps=8"), resume=True)
    with pytest.raises(FileNotFoundError, match="no complete checkpoint"):
        Trainer(tiny(tmp_path, "r2"), resume=str(tmp_path / "nowhere"))


def test_an_unfinished_checkpoint_folder_is_ignored(tmp_path):
    Trainer(tiny(tmp_path, "r", "train.max_steps=4")).fit()
    root = tmp_path / "r" / "checkpoints"
    shutil.copytree(root / "step_00000004", root / "step_00000009")
    (root / "step_00000009" / "complete").unlink()  # as if killed before the rename
    (root / "latest").unlink()
    assert latest(root).name == "step_00000004"


def test_callbacks_see_every_step_and_the_end(tmp_path):
    class Recorder:
        def __init__(self):
            self.events = []

        def on_train_start(self, trainer):
            self.events.append("start")

        def on_eval(self, trainer, step, val_loss):
            self.events.append(f"eval{step}")

        def on_train_end(self, trainer, summary):
            self.events.append(summary["status"])

    rec = Recorder()
    Trainer(tiny(tmp_path, "cb", "train.max_steps=4", "train.eval_every=2"), callbacks=[rec]).fit()
    assert rec.events == ["start", "eval2", "eval4", "done"]


def test_grad_accumulation_matches_a_bigger_batch_of_the_same_windows(tmp_path):
    """Two micro-batches of 4 (indices 0, 1) average to the gradient of both: loss equals their mean."""
    accum = Trainer(tiny(tmp_path, "acc", "train.grad_accum=2", "train.max_steps=1"))
    metrics = accum.train_step()
    x0, y0 = accum.sampler.batch(0, 0, 4)
    x1, y1 = accum.sampler.batch(0, 1, 4)
    fresh = Trainer(tiny(tmp_path, "ref", "train.max_steps=1"))
    with torch.no_grad():
        expected = (fresh.loss(x0, y0) + fresh.loss(x1, y1)) / 2
    assert metrics["loss"] == pytest.approx(float(expected), rel=1e-6)


def test_bf16_autocast_on_cpu_keeps_fp32_master_weights(tmp_path):
    trainer = Trainer(tiny(tmp_path, "bf", "train.precision=bf16", "train.max_steps=2"))
    assert trainer.autocast_dtype == torch.bfloat16
    summary = trainer.fit()
    assert summary["status"] == "done" and all(p.dtype == torch.float32 for p in trainer.raw_model.parameters())


def test_learning_rate_warms_up_then_decays(tmp_path):
    from averis.train.config import OptimConfig
    from averis.train.schedule import lr_factor

    optim = OptimConfig(warmup_steps=10, min_lr_ratio=0.1)
    factors = [lr_factor(s, optim, 100) for s in range(100)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == 1.0
    assert all(a >= b for a, b in zip(factors[9:], factors[10:])) and factors[-1] == pytest.approx(0.1, abs=1e-3)


def test_fast_path_auto_is_on_only_where_verified(tmp_path):
    """train.compile / train.cuda_graph "auto": on for the built-in models on CUDA (one process or DDP), off on
    the CPU, for Hugging Face models and under FSDP2; true / false are obeyed; anything else is refused."""
    from averis.train.fast import fast_path

    cuda, cpu = torch.device("cuda", 0), torch.device("cpu")
    auto = tiny(tmp_path, "a")
    assert (auto.train.compile, auto.train.cuda_graph) == ("auto", "auto")
    for device, mode, on in ((cuda, "none", True), (cuda, "ddp", True), (cuda, "fsdp", False), (cpu, "none", False)):
        fast = fast_path(auto, device, mode)
        assert (fast.compile, fast.cuda_graph, fast.graph_is_auto) == (on, on, True), (device, mode)
    hf = tiny(tmp_path, "h", "model.arch=hf", "model.name=smollm2-135m")
    assert not fast_path(hf, cuda, "none").cuda_graph and not fast_path(hf, cuda, "none").compile
    forced = fast_path(tiny(tmp_path, "f", "train.compile=false", "train.cuda_graph=true"), cpu, "none")
    assert (forced.compile, forced.cuda_graph, forced.graph_is_auto) == (False, True, False)
    with pytest.raises(ValueError, match="train.cuda_graph must be true, false or auto"):
        tiny(tmp_path, "x", "train.cuda_graph=sometimes")


def test_an_automatic_graph_that_cannot_be_captured_falls_back_to_eager_steps(tmp_path, capsys):
    """cuda_graph=auto: a failed capture warns and the run goes on eagerly with the same numbers;
    cuda_graph=true: the failure stops the run (the user asked for the graph)."""
    from averis.train.graph import CaptureFailed

    class Uncapturable:
        def __call__(self, x, y):
            raise CaptureFailed("train.cuda_graph: the training step cannot be captured in a CUDA graph (test)")

    eager = Trainer(tiny(tmp_path, "eager", "train.max_steps=3"))
    want = [eager.train_step()["loss"] for _ in range(3)]
    auto = Trainer(tiny(tmp_path, "auto", "train.max_steps=3"))
    auto.graphed = Uncapturable()  # what a CUDA run would hold; the CPU cannot capture
    assert [auto.train_step()["loss"] for _ in range(3)] == want and auto.graphed is None
    assert "cannot be captured" in capsys.readouterr().err
    forced = Trainer(tiny(tmp_path, "forced", "train.max_steps=3"))
    forced.graphed = Uncapturable()
    forced.fast = dataclasses.replace(forced.fast, graph_is_auto=False)
    with pytest.raises(CaptureFailed):
        forced.train_step()


def test_fit_releases_the_cuda_graph_before_the_caller_ends_the_process_group(tmp_path):
    """A live graph holding NCCL kernels makes destroy_process_group hang (pytorch#115388): `averis train` under
    torchrun finished its run and never exited.  fit() releases it; the CPU stands in with a recording step."""
    events = []

    class Recording:
        def __call__(self, x, y):
            events.append("step")
            return None  # the trainer then runs the step eagerly

        def release(self):
            events.append("release")

    trainer = Trainer(tiny(tmp_path, "run", "train.max_steps=2"))
    trainer.graphed = Recording()
    assert trainer.fit()["status"] == "done"
    assert events == ["step", "step", "release"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="a CUDA graph needs a GPU")
def test_a_released_graph_is_captured_again_with_the_same_numbers():
    from averis.train.graph import GraphedStep

    torch.manual_seed(0)
    model = torch.nn.Linear(16, 4).cuda()
    x, y = torch.randn(1, 8, 16, device="cuda"), torch.randn(1, 8, 4, device="cuda")
    step = GraphedStep(model, lambda a, b: torch.nn.functional.mse_loss(model(a), b), torch.device("cuda"))
    first = step(x, y).item()
    step.release()
    assert step.graph is None and model.weight.grad is None
    assert step(x, y).item() == first and step.graph is not None


def test_cuda_graph_needs_a_cuda_device(tmp_path):
    with pytest.raises(ValueError, match="train.cuda_graph needs a CUDA device"):
        Trainer(tiny(tmp_path, "run", "train.device=cpu", "train.cuda_graph=true"))
