"""The train / compare / report / data commands end to end, and the loss-gap arithmetic of the report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from averis.cli import main
from averis.train.quant import recipe_names
from averis.train.report import write_report

MODEL = ("model.overrides={hidden_size: 64, n_layers: 2, n_heads: 2, n_kv_heads: 1, head_dim: 32, "
         "intermediate_size: 128}")


def sets(tmp_path: Path, *extra: str) -> list[str]:
    values = ["data.max_chars=60000", "data.tokenizer=byte", "data.seq_len=32", "train.batch_size=4",
              "train.eval_every=3", "train.eval_batches=1", "train.tensorboard=false",
              f"data.cache_dir={tmp_path / 'cache'}", MODEL, *extra]
    return [arg for v in values for arg in ("--set", v)]


def test_train_command(tmp_path, capsys):
    code = main(["train", "--out", str(tmp_path / "run"), "--max-steps", "3", "--no-progress", *sets(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0 and '"status": "done"' in out
    assert (tmp_path / "run" / "checkpoints" / "latest").read_text() == "step_00000003"


def test_train_in_a_log_prints_progress_lines(tmp_path, capsys):
    """Not a terminal (capsys): progress comes as plain lines at step 1 (a log shows at once that training
    runs) and every log_every steps, no carriage returns."""
    code = main(["train", "--out", str(tmp_path / "run"), "--max-steps", "4", *sets(tmp_path, "train.log_every=2")])
    captured = capsys.readouterr()
    lines = [ln for ln in captured.out.splitlines() if ln.startswith("bf16: step")]
    assert code == 0 and [ln.split(" | ")[0] for ln in lines] == ["bf16: step 1/4 (25%)", "bf16: step 2/4 (50%)",
                                                                   "bf16: step 4/4 (100%)"]
    assert "val " in lines[-1] and "tok/s" in lines[0] and "\r" not in captured.out + captured.err  # no tqdm bar
    assert "tokenizing: chars 60,000/60,000 (100%)" in captured.out


def test_bad_config_is_one_line_without_traceback(tmp_path, capsys):
    code = main(["train", "--out", str(tmp_path / "r"), "--set", "optim.lrr=1"])
    err = capsys.readouterr().err
    assert code == 2 and "unknown config key(s) optim.lrr" in err and "Traceback" not in err
    assert main(["train", "--config", str(tmp_path / "none.yaml")]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["train", "--out", str(tmp_path / "r"), "--recipe", "fp3"]) == 2
    assert "unknown recipe" in capsys.readouterr().err


def test_compare_two_recipes_then_report(tmp_path, capsys):
    second = "nvfp4" if "nvfp4" in recipe_names() else "bf16"
    recipes = f"bf16,{second}" if second != "bf16" else "bf16"
    out = tmp_path / "cmp"
    code = main(["compare", "--recipes", recipes, "--out", str(out), "--max-steps", "6", "--no-progress",
                 *sets(tmp_path)])
    text = capsys.readouterr().out
    assert code == 0
    assert (out / "bf16" / "metrics.jsonl").is_file() and (out / second / "metrics.jsonl").is_file()
    report = json.loads((out / "report.json").read_text())
    assert [r["recipe"] for r in report["rows"]] == recipes.split(",")
    if second != "bf16":
        assert f"| {second} | 1 | 6 |" in text and report["rows"][1]["gap_final"]["n"] == 1
        assert (out / "gap_curves.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "loss_curves.png").read_bytes()[:4] == b"\x89PNG"
    # a second compare finds every run finished and only reports again
    assert main(["compare", "--recipes", recipes, "--out", str(out), "--max-steps", "6", "--no-progress",
                 *sets(tmp_path)]) == 0
    assert "finished, skipped" in capsys.readouterr().out


def fake_run(folder: Path, recipe: str, seed: int, losses: list[float], val: dict[int, float]) -> None:
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump({"recipe": recipe, "train": {"seed": seed}}))
    lines = []
    for step, loss in enumerate(losses, 1):
        rec = {"step": step, "loss": loss, "tokens_per_s": 1000.0}
        if step in val:
            rec["val_loss"] = val[step]
        lines.append(json.dumps(rec))
    (folder / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    (folder / "summary.json").write_text(json.dumps({"status": "done"}))


def test_report_gap_arithmetic(tmp_path):
    """bf16 at 2.0; the recipe 1% and 3% above it on seeds 0 and 1: gaps 2 ± 1.414, at matched steps."""
    for seed in (0, 1):
        fake_run(tmp_path / "bf16" / f"seed{seed}", "bf16", seed, [2.0] * 20, {10: 2.0, 20: 2.0})
    for seed, factor in ((0, 1.01), (1, 1.03)):
        fake_run(tmp_path / "fp4" / f"seed{seed}", "fp4", seed, [2.0 * factor] * 20,
                 {10: 2.0 * factor, 20: 2.0 * factor})
    summary = write_report(tmp_path, plots=False)
    row = {r["recipe"]: r for r in summary["rows"]}["fp4"]
    assert row["gap_final"]["mean"] == pytest.approx(2.0) and row["gap_final"]["n"] == 2
    assert row["gap_final"]["std"] == pytest.approx(2 ** 0.5)
    assert row["gap_last10"]["mean"] == pytest.approx(2.0) and row["gap_final_on"] == "val"
    assert row["gap_final_by_seed"] == {0: pytest.approx(1.0), 1: pytest.approx(3.0)}
    assert row["gap_last10_by_seed"] == {0: pytest.approx(1.0), 1: pytest.approx(3.0)}
    assert "| fp4 | 2 | 20 |" in summary["markdown"] and "+2.00 ± 1.41" in summary["markdown"]
    assert "GPU GiB" not in summary["markdown"]  # CPU runs: no memory column

    # GPU runs record their peak memory: the table gives each recipe's largest
    for seed, peak in ((0, 30.5), (1, 41.25)):
        info = json.loads((tmp_path / "fp4" / f"seed{seed}" / "summary.json").read_text())
        (tmp_path / "fp4" / f"seed{seed}" / "summary.json").write_text(json.dumps({**info, "gpu_peak_gib": peak}))
    summary = write_report(tmp_path, plots=False)
    markdown = summary["markdown"]
    assert "| tokens/s | GPU GiB (peak) |" in markdown
    # report.json keeps each run's own: its median tokens/s (every fake step logs 1000) and its peak
    runs = {(r["recipe"], r["seed"]): r for r in summary["runs"]}
    assert runs[("fp4", 0)]["gpu_peak_gib"] == 30.5 and runs[("fp4", 1)]["gpu_peak_gib"] == 41.25
    assert runs[("bf16", 0)]["gpu_peak_gib"] is None and runs[("bf16", 0)]["tokens_per_s"] == 1000.0
    rows = [line for line in markdown.splitlines() if line.startswith(("| fp4 ", "| bf16 "))]
    assert [row.rsplit("|", 2)[1].strip() for row in rows] == ["-", "41.2"]


def paired_runs(root: Path, gaps: dict[str, list[float]]) -> None:
    """bf16 at 2.0 on seeds 0, 1, 2; each recipe gaps[recipe][seed] percent above it, every step."""
    for seed in range(3):
        fake_run(root / "bf16" / f"seed{seed}", "bf16", seed, [2.0] * 20, {10: 2.0, 20: 2.0})
    for recipe, per_seed in gaps.items():
        for seed, gap in enumerate(per_seed):
            loss = 2.0 * (1 + gap / 100)
            fake_run(root / recipe / f"seed{seed}", recipe, seed, [loss] * 20, {10: loss, 20: loss})


def test_report_paired_statistics(tmp_path):
    """Seeds spread the gaps by 4 points, but 'good' is 0.4-0.6 below nvfp4 on every seed: resolved
    by pairing (mean -0.5, sd 0.1, t(0.975, 2) = 4.303: interval -0.5 ± 0.248), while 'mixed' is not."""
    paired_runs(tmp_path, {"nvfp4": [1.0, 3.0, 5.0], "good": [0.5, 2.6, 4.4], "mixed": [1.5, 2.7, 5.1]})
    summary = write_report(tmp_path, plots=False, meta={"device": "CPU", "commit": "abc1234"})
    rows = {r["recipe"]: r for r in summary["rows"]}
    assert rows["good"]["gap_final"]["std"] > 1.9  # unpaired, the seeds hide the difference
    (pair,) = summary["paired"]
    assert pair["against"] == "nvfp4" and [r["recipe"] for r in pair["rows"]] == ["good", "mixed"]
    good, mixed = pair["rows"]
    for metric in ("final", "last10"):
        st = good[metric]
        assert st["by_seed"] == {0: pytest.approx(-0.5), 1: pytest.approx(-0.4), 2: pytest.approx(-0.6)}
        assert st["mean"] == pytest.approx(-0.5) and st["std"] == pytest.approx(0.1) and st["n"] == 3
        half = 4.302652729749 * 0.1 / 3 ** 0.5
        assert (st["ci_low"], st["ci_high"]) == (pytest.approx(-0.5 - half), pytest.approx(-0.5 + half))
        assert st["lower"] == 3 and st["resolved"] and st["verdict"] == "lower"
        assert mixed[metric]["lower"] == 1 and mixed[metric]["higher"] == 2
        assert not mixed[metric]["resolved"] and mixed[metric]["verdict"] == "not resolved"
    text = summary["markdown"]
    assert text.startswith("# Recipe comparison\n\n- device: CPU\n- commit: abc1234\n\n")
    assert "## Paired against nvfp4" in text
    assert "| good | 3 | 0: -0.50, 1: -0.40, 2: -0.60 | -0.50 | [-0.75, -0.25] | 3/3 lower | lower |" in text
    assert "| mixed | 3 | 0: +0.50, 1: -0.30, 2: +0.10 | +0.10 | [" in text and "1/3 lower | not resolved |" in text
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["meta"] == {"device": "CPU", "commit": "abc1234"}
    assert saved["paired"][0]["rows"][0]["final"]["verdict"] == "lower"


def test_report_paired_curve_over_training(tmp_path):
    """The paired difference at every evaluation: 'good' is 0.5 / 0.4 / 0.6 points below nvfp4 at every
    validation step of seeds 0-2 (paired_runs), so each step's mean is -0.5 with the t-interval of the final
    reading; the curve is in report.json and drawn in paired_nvfp4.png."""
    paired_runs(tmp_path, {"nvfp4": [1.0, 3.0, 5.0], "good": [0.5, 2.6, 4.4]})
    summary = write_report(tmp_path, plots=True)
    (pair,) = summary["paired"]
    curve = pair["rows"][0]["curve"]
    assert [c["step"] for c in curve] == [10, 20] and all(c["n"] == 3 for c in curve)
    half = 4.302652729749 * 0.1 / 3 ** 0.5
    for c in curve:
        assert c["mean"] == pytest.approx(-0.5)
        assert (c["ci_low"], c["ci_high"]) == (pytest.approx(-0.5 - half), pytest.approx(-0.5 + half))
    assert (tmp_path / "paired_nvfp4.png").stat().st_size > 0
    assert "`paired_nvfp4.png`" in summary["markdown"]
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["paired"][0]["rows"][0]["curve"][0]["step"] == 10


def test_report_leaves_runs_cut_short_out_of_the_gaps(tmp_path):
    """A run stopped at step 8 of 20 (a time budget) would be compared at step 8: it is left out of the gaps
    and of the pairing, and the report says so."""
    paired_runs(tmp_path, {"nvfp4": [1.0, 3.0, 5.0], "good": [0.5, 2.6, 4.4]})
    fake_run(tmp_path / "good" / "seed3", "good", 3, [9.0] * 8, {})
    fake_run(tmp_path / "bf16" / "seed3", "bf16", 3, [2.0] * 20, {10: 2.0, 20: 2.0})
    fake_run(tmp_path / "nvfp4" / "seed3", "nvfp4", 3, [2.0] * 20, {10: 2.0, 20: 2.0})
    summary = write_report(tmp_path, plots=False)
    good = {r["recipe"]: r for r in summary["rows"]}["good"]
    assert good["partial_excluded"] == 1 and good["gap_final"]["n"] == 3 and 3 not in good["gap_final_by_seed"]
    assert summary["paired"][0]["rows"][0]["seeds"] == [0, 1, 2]
    assert "1 run(s) shorter than the longest run are left out" in summary["markdown"]


def test_report_paired_against_option(tmp_path, capsys):
    paired_runs(tmp_path, {"nvfp4": [1.0, 3.0, 5.0], "good": [0.5, 2.6, 4.4]})
    assert main(["report", str(tmp_path), "--no-plots", "--paired-against", "good,nvfp4",
                 "--meta", "device=NVIDIA H100 80GB HBM3", "--meta", "commit=1d967eb"]) == 0
    text = capsys.readouterr().out
    assert "- device: NVIDIA H100 80GB HBM3\n- commit: 1d967eb\n" in text
    assert "## Paired against good" in text and "## Paired against nvfp4" in text
    assert "| nvfp4 | 3 | 0: +0.50, 1: +0.40, 2: +0.60 | +0.50 | [+0.25, +0.75] | 0/3 lower | higher |" in text
    assert main(["report", str(tmp_path), "--no-plots", "--paired-against", ""]) == 0
    assert "Paired" not in capsys.readouterr().out
    assert main(["report", str(tmp_path), "--no-plots", "--paired-against", "nvidia"]) == 2
    assert "cannot pair against 'nvidia'" in capsys.readouterr().err
    assert main(["report", str(tmp_path), "--no-plots", "--meta", "device"]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err


def test_report_single_seed_pairs_are_not_resolved(tmp_path):
    for recipe, factor in (("bf16", 1.0), ("nvfp4", 1.02), ("averis", 1.01)):
        fake_run(tmp_path / recipe, recipe, 0, [2.0 * factor] * 10, {10: 2.0 * factor})
    (pair,) = write_report(tmp_path, plots=False)["paired"]
    st = pair["rows"][0]["final"]
    assert st["mean"] == pytest.approx(-1.0) and st["ci_low"] is None
    assert st["lower"] == 1 and not st["resolved"] and st["verdict"] == "not resolved (one seed)"


def test_t_quantile_matches_the_tables():
    from averis.train.report import t_quantile

    for df, value in ((1, 12.7062047), (2, 4.3026527), (4, 2.7764451), (9, 2.2621572), (29, 2.0452296),
                      (100, 1.9839715), (10_000, 1.9602012)):
        assert t_quantile(0.975, df) == pytest.approx(value, abs=1e-6)
    assert t_quantile(0.025, 3) == pytest.approx(-3.1824463, abs=1e-6)
    assert t_quantile(0.995, 5) == pytest.approx(4.0321430, abs=1e-6)


def test_loss_plot_zoom_keeps_the_validation_dots_and_says_it_clips_the_first_steps(tmp_path, monkeypatch):
    """Training loss ~3 after the first steps, validation 2.5: the y-range must reach down to 2.5; the first
    steps (6.0) lie above it, and the title says so."""
    import averis.train.report as report

    for recipe, shift in (("bf16", 0.0), ("fp4", 0.1)):
        fake_run(tmp_path / recipe, recipe, 0, [6.0] * 5 + [3.0 + shift] * 45, {25: 2.5 + shift, 50: 2.5 + shift})
    figures = []
    real_save = report._save
    monkeypatch.setattr(report, "_save", lambda fig, path: (figures.append(
        (path.name, (fig.axes[0].get_ylim(), fig.axes[0].get_title()))), real_save(fig, path))[1])
    write_report(tmp_path)
    (low, high), title = dict(figures)["loss_curves.png"]
    assert low < 2.5 and 3.1 < high < 6.0
    assert "the first steps (loss up to 6.00) are above the top" in title


def test_report_speed_is_the_median_over_the_run(tmp_path):
    """Speeds are of the last steps: a run that ended alone on the machine must not look twice as fast."""
    fake_run(tmp_path / "bf16", "bf16", 0, [2.0] * 5, {5: 2.0})
    lines = [json.loads(ln) for ln in (tmp_path / "bf16" / "metrics.jsonl").read_text().splitlines()]
    for rec, speed in zip(lines, (500.0, 520.0, 510.0, 530.0, 1100.0)):
        rec["tokens_per_s"] = speed
    (tmp_path / "bf16" / "metrics.jsonl").write_text("".join(json.dumps(rec) + "\n" for rec in lines))
    (row,) = write_report(tmp_path, plots=False)["rows"]
    assert row["tokens_per_s"]["mean"] == 520.0


def test_report_of_an_empty_folder_is_a_clear_error(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "no runs under" in capsys.readouterr().err


def test_data_tokenize_and_info(tmp_path, capsys):
    import lzma

    from averis.data import bundled_files

    (tmp_path / "text.txt").write_text(lzma.open(bundled_files()[1], "rt").read(50_000))
    out = tmp_path / "tok"
    args = ["data", "tokenize", "--source", "files", "--paths", str(tmp_path / "text.txt"), "--tokenizer", "bpe",
            "--vocab-size", "300", "--out", str(out), "--no-progress", "--val-fraction", "0"]
    assert main(args) == 0
    assert "vocab 300" in capsys.readouterr().out and (out / "tokenizer.json").is_file()
    assert main(args) == 2 and "--force" in capsys.readouterr().err
    assert main(["data", "info", str(out / "train.bin")]) == 0
    assert '"vocab_size": 300' in capsys.readouterr().out


def test_several_overrides_after_one_set(tmp_path, capsys):
    args = ["train", "--out", str(tmp_path / "r"), "--no-progress", *sets(tmp_path),
            "--set", "train.max_steps=2", "train.eval_every=2"]
    assert main(args) == 0
    assert '"step": 2' in capsys.readouterr().out


def test_every_command_has_a_description_and_every_argument_a_help():
    """`averis COMMAND --help` must say what the command does and what each argument means."""
    import argparse

    from averis.cli import build_parser

    missing = []

    def walk(parser, name):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub_name, sub in action.choices.items():
                    if not sub.description:
                        missing.append(f"{name} {sub_name}: description")
                    walk(sub, f"{name} {sub_name}")
            elif not action.help and action.dest != "help":
                missing.append(f"{name} {'/'.join(action.option_strings) or action.dest}")

    walk(build_parser(), "averis")
    assert missing == []


def test_recipe_files_work_on_the_command_line_and_unknown_names_say_how(tmp_path, capsys):
    recipe = tmp_path / "my_fp4.yaml"
    recipe.write_text("base: nvfp4\nactivations: {transform: mean}\n")
    args = ["train", "--recipe", str(recipe), "--out", str(tmp_path / "run"), "--max-steps", "2", "--no-progress",
            *sets(tmp_path)]
    assert main(args) == 0
    assert '"recipe": "' + str(recipe) in capsys.readouterr().out
    assert main(["train", "--recipe", "nvfp5", "--out", str(tmp_path / "r2")]) == 2
    err = capsys.readouterr().err
    assert "unknown recipe 'nvfp5'" in err and "--recipe path/to/recipe.yaml" in err and "averis.recipes" not in err
    assert main(["train", "--recipe", str(tmp_path / "none.yaml"), "--out", str(tmp_path / "r3")]) == 2
    assert "none.yaml does not exist" in capsys.readouterr().err


def test_compare_defaults_to_bf16_nvfp4_averis_side_by_side_and_passes_their_progress_on(tmp_path, capsys):
    """The main job: with no --recipes, bf16, nvfp4 and averis; on a CPU all three at once as processes with
    one thread each (no run slows to a crawl on busy cores), and their progress lines come through here."""
    out = tmp_path / "cmp"
    assert main(["compare", "--out", str(out), "--max-steps", "3", *sets(tmp_path, "train.log_every=2")]) == 0
    text = capsys.readouterr().out
    first = text.splitlines()[0]
    assert first.startswith("averis compare: bf16, nvfp4, averis on the qwen3 tiny model, 3 steps of 4 x 32 tokens")
    assert "3 runs to train, 3 side by side" in first
    for recipe in ("bf16", "nvfp4", "averis"):
        assert f"{recipe}: step 1/3 (33%) | loss " in text and f"{recipe}: step 3/3 (100%)" in text
        assert yaml.safe_load((out / recipe / "config.yaml").read_text())["train"]["threads"] >= 1
    assert '{"status"' not in text  # the runs' closing summaries stay in their train.log; the table says it
    assert "warning" not in text  # first runs are not resumed: nothing to warn about
    assert "| averis | 1 | 3 |" in text and "| nvfp4 | 1 | 3 |" in text


def test_runs_side_by_side_and_threads_by_default(monkeypatch):
    import averis.train.trainer as trainer
    from averis.train.compare import auto_jobs
    from averis.train.trainer import cpu_threads

    assert [auto_jobs(n, cuda=False, cores=2) for n in (1, 3, 4, 9)] == [1, 3, 2, 2]
    assert [auto_jobs(n, cuda=True) for n in (1, 3, 9)] == [1, 3, 4]
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(trainer, "available_cores", lambda: 2)
    assert [cpu_threads(0, p) for p in (1, 3)] == [1, 1]  # one core spare: waiting threads never spin on it
    monkeypatch.setattr(trainer, "available_cores", lambda: 16)
    assert [cpu_threads(0, p) for p in (1, 3, 20)] == [15, 5, 1]
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert cpu_threads(0, 3) == 2 and cpu_threads(4, 3) == 4


# a stand-in for `averis train` in the side-by-side tests: what it does depends on its run's folder name
FAKE_RUN = r"""
import json, pathlib, sys, time
run = pathlib.Path(sys.argv[1]).parent
(run / "attempts").open("a").write("x")
if run.name == "slow":
    time.sleep(3)
elif run.name == "oom_once" and len((run / "attempts").read_text()) == 1:
    time.sleep(0.3)
    print("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 3.00 GiB.")
    sys.exit(1)
elif run.name == "crash":
    time.sleep(0.3)
    print("ValueError: something else went wrong")
    sys.exit(1)
(run / "summary.json").write_text(json.dumps({"status": "done", "recipe": run.name}))
"""


def _fake_side_by_side(tmp_path, monkeypatch, names, jobs):
    import dataclasses
    import sys

    import averis.train.compare as compare
    from averis.train.config import RunConfig

    monkeypatch.setattr(compare, "_child_command", lambda cfg_path, args: [sys.executable, "-c", FAKE_RUN,
                                                                            str(cfg_path)])
    configs = [dataclasses.replace(RunConfig(), recipe="bf16", out=str(tmp_path / n)) for n in names]
    results = compare._run_parallel(configs, jobs)
    return results, {n: len((tmp_path / n / "attempts").read_text()) for n in names}


def test_a_run_out_of_gpu_memory_beside_others_runs_again_with_fewer_side_by_side(tmp_path, monkeypatch, capsys):
    results, attempts = _fake_side_by_side(tmp_path, monkeypatch, ["slow", "oom_once", "crash"], jobs=3)
    text = capsys.readouterr().out
    assert attempts == {"slow": 1, "oom_once": 2, "crash": 1}  # another failure is not retried
    assert sorted(r.get("recipe", r["status"]) for r in results) == ["failed", "oom_once", "slow"]
    assert "ran out of GPU memory beside" in text and "runs again, and at most" in text
    assert text.count("started bf16 seed 0 ->") == 4


def test_a_run_out_of_gpu_memory_alone_is_not_retried(tmp_path, monkeypatch, capsys):
    results, attempts = _fake_side_by_side(tmp_path, monkeypatch, ["oom_once"], jobs=2)
    assert attempts == {"oom_once": 1}
    assert results == [{"status": "failed", "out": str(tmp_path / "oom_once"), "exit_code": 1}]
    assert "runs again" not in capsys.readouterr().out


def test_compare_puts_added_seeds_beside_the_earlier_ones(tmp_path):
    """A comparison continued with one more seed must not write into OUT/<recipe>/, among the seed folders (or
    where a one-seed comparison's run would be taken for it and skipped)."""
    from averis.train.compare import plan
    from averis.train.config import RunConfig

    out = tmp_path / "cmp"
    base = RunConfig()
    assert [c.out for c in plan(base, ["bf16"], [2], out)] == [str(out / "bf16")]  # one seed, fresh: flat
    assert [c.out for c in plan(base, ["bf16", "nvfp4"], [0, 1], out)] == [
        str(out / r / f"seed{s}") for s in (0, 1) for r in ("bf16", "nvfp4")]
    (out / "nvfp4" / "seed1").mkdir(parents=True)  # an earlier comparison of several seeds
    assert [c.out for c in plan(base, ["bf16", "nvfp4"], [2], out)] == [str(out / "bf16" / "seed2"),
                                                                        str(out / "nvfp4" / "seed2")]
    assert [c.train.seed for c in plan(base, ["bf16"], [1, 2], out)] == [1, 2]
