"""Training: typed configs, the Trainer (checkpoints, DDP / FSDP2, callbacks), recipe comparison reports."""

from .config import DataConfig, ModelConfig, OptimConfig, RunConfig, TrainConfig, load_config, save_config
from .trainer import Trainer


def train(cfg: RunConfig, callbacks=(), resume=None) -> dict:
    """Run one training job to the end; returns its summary."""
    trainer = Trainer(cfg, callbacks=callbacks, resume=resume)
    return trainer.fit()


__all__ = ["Trainer", "train", "RunConfig", "DataConfig", "ModelConfig", "OptimConfig", "TrainConfig",
           "load_config", "save_config"]
