"""Run configs: defaults, YAML/TOML files, dotted overrides, and clear errors for bad keys and types."""

from __future__ import annotations

import pytest

from averis.train.config import RunConfig, load_config, save_config


def test_defaults_and_dotted_overrides():
    cfg = load_config(overrides=["optim.lr=3e-4", "train.batch_size=8", "optim.betas=[0.9, 0.99]",
                                 "data.names=[austen, kjv]", "model.overrides={n_layers: 2}", "recipe=nvfp4"])
    assert cfg.optim.lr == 3e-4 and isinstance(cfg.optim.lr, float)
    assert cfg.train.batch_size == 8 and cfg.optim.betas == [0.9, 0.99]
    assert cfg.data.names == ["austen", "kjv"] and cfg.model.overrides == {"n_layers": 2}
    assert cfg.recipe == "nvfp4" and cfg.train.max_steps == RunConfig().train.max_steps


def test_integers_are_accepted_where_floats_are_expected():
    assert load_config(overrides=["optim.lr=1"]).optim.lr == 1.0


def test_yaml_and_toml_files_then_overrides(tmp_path):
    (tmp_path / "c.yaml").write_text("recipe: averis\ntrain:\n  max_steps: 7\noptim:\n  lr: 0.002\n")
    (tmp_path / "c.toml").write_text('recipe = "averis"\n[train]\nmax_steps = 7\n[optim]\nlr = 0.002\n')
    for name in ("c.yaml", "c.toml"):
        cfg = load_config(tmp_path / name, ["train.max_steps=9"])
        assert (cfg.recipe, cfg.train.max_steps, cfg.optim.lr) == ("averis", 9, 0.002)


def test_saved_config_loads_back_identically(tmp_path):
    cfg = load_config(overrides=["train.seed=3", "model.tie_embeddings=false", "data.hf_config=null"])
    save_config(cfg, tmp_path / "config.yaml")
    assert load_config(tmp_path / "config.yaml") == cfg


@pytest.mark.parametrize("override, message", [
    ("optim.lrr=1e-3", r"unknown config key\(s\) optim.lrr.*valid keys: .*lr"),
    ("trian.max_steps=3", r"unknown config key\(s\) trian"),
    ("train.batch_size=eight", r"train.batch_size: expected int, got 'eight'"),
    ("train.batch_size=2.5", r"train.batch_size: expected int"),
    ("train.compile=yes please", r"train.compile must be true, false or auto"),
    ("optim.betas=0.9", r"optim.betas: expected a list"),
    ("train.max_steps=0", r"train.max_steps must be > 0"),
    ("train.precision=fp8", r"train.precision must be one of auto, bf16, fp32"),
    ("optim", r"must look like key.sub=value"),
    ("model.arch=hf", r"model.arch=hf needs model.name"),
])
def test_bad_configs_name_the_key(override, message):
    with pytest.raises(ValueError, match=message):
        load_config(overrides=[override])


def test_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("train: [unclosed")
    with pytest.raises(ValueError, match="not valid YAML"):
        load_config(tmp_path / "bad.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match="must be a mapping"):
        load_config(tmp_path / "list.yaml")


def test_configs_tiny_yaml_is_the_built_in_default_written_out():
    from pathlib import Path

    cfg = load_config(Path(__file__).resolve().parents[1] / "configs" / "tiny.yaml")
    assert cfg == RunConfig(out="runs/tiny")


def test_the_built_in_default_is_larger_on_a_gpu_unless_a_config_or_the_cpu_is_named(monkeypatch, tmp_path):
    import torch

    from averis.cli import build_parser
    from averis.cli._runargs import config_from_args

    def cfg(*argv):
        return config_from_args(build_parser().parse_args(["train", *argv]))

    assert cfg().model.preset == "tiny"  # no GPU here
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    gpu = cfg("--max-steps", "7")
    assert (gpu.model.preset, gpu.train.batch_size, gpu.train.max_steps) == ("small", 16, 7)
    assert cfg("--device", "cpu").model.preset == "tiny"
    (tmp_path / "c.yaml").write_text("train:\n  max_steps: 5\n")
    assert cfg("--config", str(tmp_path / "c.yaml")).model.preset == "tiny"
