"""Typed run configuration: dataclasses loaded from YAML or TOML, with dotted overrides, saved beside each run.

    cfg = load_config("configs/tiny.yaml", ["optim.lr=3e-4", "train.batch_size=8"])

Unknown keys and values of the wrong type are errors that name the key and what it accepts.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml


@dataclass
class DataConfig:
    source: str = "bundled"          # bundled | corpus | files | hf:<dataset> (ignored with train_tokens)
    paths: list[str] = field(default_factory=list)   # files/folders for "files" (data_files for hf:)
    names: list[str] = field(default_factory=list)   # corpus subset, e.g. [austen, kjv]; empty = all
    train_tokens: str = ""           # a pre-tokenized .bin token file (skips tokenization)
    val_tokens: str = ""             # its validation counterpart (optional)
    tokenizer: str = "bpe"           # bpe (trained here) | byte | path/to/tokenizer.json | pretrained name
    vocab_size: int = 4096           # for bpe
    seq_len: int = 256
    val_fraction: float = 0.02
    split_seed: int = 0              # the train/validation split (independent of train.seed)
    max_chars: int = 0               # >0: use only this many characters (quick runs)
    hf_split: str = "train"
    hf_text_field: str = "text"
    hf_config: str | None = None
    cache_dir: str = ""              # token cache; default $AVERIS_CACHE/tokens or ~/.cache/averis/tokens


@dataclass
class ModelConfig:
    arch: str = "qwen3"              # qwen3 (ours, averis.models.qwen3) | hf (transformers)
    preset: str = "tiny"             # qwen3 preset: tiny, small, bench, qwen3-0.6b (see averis.models.qwen3)
    name: str = ""                   # hf: "smollm2-135m", a folder, a .gguf or a hub id
    pretrained: bool = True          # hf: load weights (False: same config, random init)
    hf_config: dict = field(default_factory=dict)  # hf without a name: a transformers config, e.g.
    #                                  {model_type: llama, hidden_size: 256, ...}; vocab_size defaults to the data's
    tie_embeddings: bool | None = None   # qwen3: override the preset's choice
    overrides: dict = field(default_factory=dict)  # qwen3: any Qwen3Config field, e.g. {n_layers: 2}


@dataclass
class OptimConfig:
    lr: float = 2e-3
    min_lr_ratio: float = 0.1        # cosine decays to lr * min_lr_ratio
    warmup_steps: int = 30
    schedule: str = "cosine"         # cosine | constant | linear
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95])
    eps: float = 1e-8
    weight_decay: float = 0.1
    grad_clip: float = 1.0           # <= 0 disables clipping


@dataclass
class TrainConfig:
    # the defaults are the built-in demo on a CPU: 300 steps of 2 x 256 tokens, about two minutes for an FP4
    # recipe on one core (emulated FP4 costs ~5x BF16 there; small steps learn the most from few tokens)
    max_steps: int = 300
    batch_size: int = 2              # sequences per micro-batch per rank
    grad_accum: int = 1
    seed: int = 0
    device: str = "auto"             # auto | cpu | cuda | cuda:N
    threads: int = 0                 # CPU threads; 0: $OMP_NUM_THREADS, else every core but one (see cpu_threads)
    precision: str = "auto"          # auto (bf16 autocast on CUDA, fp32 on CPU) | bf16 | fp32
    # the fast path: "auto" turns both on for the built-in Qwen3 models on CUDA (one GPU or DDP), where they are
    # verified; off on the CPU, for Hugging Face models and under FSDP2 (true/false force them; see train/fast.py)
    compile: bool | str = "auto"
    cuda_graph: bool | str = "auto"  # replay forward + backward from a CUDA graph (see train/graph.py)
    distributed: str = "auto"        # auto (ddp under torchrun) | none | ddp | fsdp
    eval_every: int = 50             # 0: only at the end
    eval_batches: int = 8
    eval_quantized: bool = True      # validation through the FP4 forward (False: the same weights in high precision)
    log_every: int = 25
    ckpt_every: int = 100            # 0: only at the end
    keep_checkpoints: int = 2
    progress: bool = True
    tensorboard: bool = True
    divergence_ratio: float = 3.0    # stop when the smoothed loss exceeds ratio x its best (after warm-up)
    time_limit_s: float = 0          # >0: checkpoint and stop after this long (resume later)


@dataclass
class RunConfig:
    recipe: str = "bf16"
    out: str = "runs/default"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


# The built-in default on a GPU (no --config, device cuda): the CPU demo larger, in about the same time
GPU_DEFAULTS = {"model": {"preset": "small"}, "optim": {"lr": 1e-3}, "train": {"batch_size": 16}}


def to_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)


def from_dict(data: dict, cls=RunConfig, prefix: str = ""):
    """Build a dataclass from a nested dict, checking every key and type."""
    if not isinstance(data, dict):
        raise ValueError(f"config section {prefix or '(top)'} must be a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(data) - set(fields))
    if unknown:
        where = prefix.rstrip(".") or "the top level"
        raise ValueError(f"unknown config key(s) {', '.join(prefix + k for k in unknown)} in {where}; "
                         f"valid keys: {', '.join(sorted(fields))}")
    kwargs = {}
    for name, value in data.items():
        kind = hints[name]
        if dataclasses.is_dataclass(kind):
            kwargs[name] = from_dict(value, kind, f"{prefix}{name}.")
        else:
            kwargs[name] = check_type(value, kind, prefix + name)
    return cls(**kwargs)


def check_type(value, kind, key: str):
    """value converted to kind (int -> float allowed), or a ValueError naming key."""
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(kind)
        if value is None and type(None) in options:
            return None
        for option in options:
            if option is type(None):
                continue
            try:
                return check_type(value, option, key)
            except ValueError:
                pass
        raise ValueError(f"config key {key}: expected {_name(kind)}, got {value!r}")
    if origin is list:
        if not isinstance(value, list | tuple):
            raise ValueError(f"config key {key}: expected a list, got {value!r}")
        (item,) = typing.get_args(kind)
        return [check_type(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
    if kind is dict or origin is dict:
        if not isinstance(value, dict):
            raise ValueError(f"config key {key}: expected a mapping, got {value!r}")
        return dict(value)
    if kind is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if kind in (int, str, bool) and type(value) is kind:
        return value
    raise ValueError(f"config key {key}: expected {_name(kind)}, got {value!r} ({type(value).__name__})")


def _name(kind) -> str:
    return getattr(kind, "__name__", str(kind).replace("typing.", ""))


def read_file(path: str | Path) -> dict:
    """A YAML (.yaml/.yml) or TOML (.toml) file as a dict."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} not found")
    text = path.read_text()
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text)
    except (yaml.YAMLError, tomllib.TOMLDecodeError) as err:
        raise ValueError(f"config file {path} is not valid {'TOML' if path.suffix == '.toml' else 'YAML'}: "
                         f"{err}") from err
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"config file {path} must be a mapping of sections (recipe, data, model, optim, train), "
                         f"not a {type(data).__name__}")
    return data


def apply_override(data: dict, override: str) -> None:
    """Apply "a.b.c=value" to a nested dict; the value is parsed as YAML (3e-4, true, [1, 2], null)."""
    if "=" not in override:
        raise ValueError(f"override {override!r} must look like key.sub=value (e.g. optim.lr=3e-4)")
    key, raw = override.split("=", 1)
    value = yaml.safe_load(raw) if raw.strip() else ""
    if isinstance(value, str) and _looks_numeric(value):
        value = float(value)  # YAML reads "3e-4" (no dot) as a string
    node = data
    parts = key.strip().split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ValueError(f"override {override!r}: {part} is not a section")
    node[parts[-1]] = value


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return text.strip().lower() not in ("nan", "inf", "-inf", "infinity")


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = (),
                base: dict | None = None) -> RunConfig:
    """RunConfig from defaults <- base dict <- file <- overrides (later wins), validated."""
    data = _merge(to_dict(RunConfig()), base or {})
    if path:
        data = _merge(data, read_file(path))
    for override in overrides:
        apply_override(data, override)
    cfg = from_dict(data)
    validate(cfg)
    return cfg


def _merge(into: dict, new: dict) -> dict:
    out = dict(into)
    for k, v in new.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict) and k not in ("overrides", "hf_config"):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def validate(cfg: RunConfig) -> None:
    """Checks across fields that types alone cannot express."""
    t, o, d = cfg.train, cfg.optim, cfg.data
    positive = {"train.max_steps": t.max_steps, "train.batch_size": t.batch_size, "train.grad_accum": t.grad_accum,
                "data.seq_len": d.seq_len, "train.log_every": t.log_every}
    for key, value in positive.items():
        if value <= 0:
            raise ValueError(f"config key {key} must be > 0, got {value}")
    choices = {"train.precision": (t.precision, ("auto", "bf16", "fp32")),
               "train.distributed": (t.distributed, ("auto", "none", "ddp", "fsdp")),
               "optim.schedule": (o.schedule, ("cosine", "constant", "linear")),
               "model.arch": (cfg.model.arch, ("qwen3", "hf"))}
    for key, (value, allowed) in choices.items():
        if value not in allowed:
            raise ValueError(f"config key {key} must be one of {', '.join(allowed)}, got {value!r}")
    for key, value in (("train.compile", t.compile), ("train.cuda_graph", t.cuda_graph)):
        if isinstance(value, str) and value != "auto":
            raise ValueError(f"config key {key} must be true, false or auto, got {value!r}")
    if len(o.betas) != 2:
        raise ValueError(f"optim.betas must have two values, got {o.betas}")
    if cfg.model.arch == "hf" and not cfg.model.name and not cfg.model.hf_config:
        raise ValueError("model.arch=hf needs model.name (e.g. smollm2-135m, a folder or a hub id) or "
                         "model.hf_config (a transformers config with model_type)")
    if cfg.model.hf_config and "model_type" not in cfg.model.hf_config:
        raise ValueError("model.hf_config needs a model_type (e.g. llama, qwen3, gpt2)")


def save_config(cfg: RunConfig, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))


def config_json(cfg: RunConfig) -> str:
    return json.dumps(to_dict(cfg), sort_keys=True)
