"""Load a checkpoint of ``averis train`` for analysis: the model in high precision and its tokenizer.

A checkpoint folder (``OUT/checkpoints/step_N``) holds model.safetensors and trainer.pt, whose
``config`` rebuilds the model; the tokenizer comes from the run's data config (the token cache, or
rebuilt from the same text).  The model is returned unquantized: the analysis measures the
high-precision operands that the recipe's quantizers would see.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn


def checkpoint_folder(path: str | Path) -> Path:
    """The step folder itself, or a run folder's latest complete checkpoint."""
    from ..train import checkpoint as ckpt

    path = Path(path)
    if (path / "checkpoints").is_dir():
        latest = ckpt.latest(path / "checkpoints")
        if latest is None:
            raise FileNotFoundError(f"{path}/checkpoints holds no complete checkpoint (step_* with "
                                    f"'{ckpt.COMPLETE}')")
        return latest
    if not (path / ckpt.MODEL_FILE).is_file():
        raise FileNotFoundError(f"no {ckpt.MODEL_FILE} in {path}: give a step_* checkpoint folder or a run folder")
    return path


def load_checkpoint(path: str | Path) -> tuple[nn.Module, object, str]:
    """(model on the CPU in eval mode, tokenizer, label "run/step_N") of a checkpoint or run folder."""
    from ..data.prepare import prepare
    from ..train import checkpoint as ckpt
    from ..train.config import RunConfig, from_dict
    from ..train.model import build_model

    folder = checkpoint_folder(path)
    if not (folder / ckpt.TRAINER_FILE).is_file():
        raise FileNotFoundError(f"{folder} has no {ckpt.TRAINER_FILE}: its run config (and so the model "
                                f"architecture) is unknown")
    cfg = from_dict(ckpt.load_trainer_state(folder)["config"], RunConfig)
    data = prepare(cfg.data, cfg.data.cache_dir or None, progress=False)
    model = build_model(cfg.model, data.vocab_size, cfg.data.seq_len)
    state = ckpt.load_model_file(folder / ckpt.MODEL_FILE)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"checkpoint {folder} does not fit the model its config builds: missing "
                         f"{list(missing)[:3]}, unexpected {list(unexpected)[:3]}")
    tokenizer = data.tokenizer()
    if tokenizer is None:
        raise ValueError(f"the run of {folder} was trained on given token files without a tokenizer: "
                         f"the analysis cannot tokenize text for it")
    run_name = folder.parent.parent.name if folder.parent.name == "checkpoints" else folder.parent.name
    return model.eval(), tokenizer, f"{run_name}/{folder.name}"
