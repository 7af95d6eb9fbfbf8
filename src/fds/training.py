"""``train(cfg)``: build data, model, callbacks, loggers and trainer from a Hydra config and fit.

Used by ``train.py`` and the ``fds-train`` console script (lightning-hydra-template style).
"""

from __future__ import annotations

import logging
from typing import Any

import hydra
import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import ModelCheckpoint

from fds.loggers import quiet_training_noise

log = logging.getLogger(__name__)


class ResumableCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` whose best-so-far bookkeeping survives a resume into a new run folder.

    ``python train.py ckpt_path=RUN/checkpoints/latest.ckpt`` starts a new Hydra run folder, so ``dirpath``
    differs from the one saved in the checkpoint, and Lightning then forgets ``best_model_score`` (with a
    warning): the first epoch after the resume was marked best even when it was worse. Here the saved state is
    restored whatever the folder. The best checkpoint stays where it was written (Lightning never deletes files
    outside ``dirpath`` nor the file it resumed from) until a better epoch is saved in the new folder.
    The state key stays ``ModelCheckpoint``'s, so runs saved with the plain callback resume too.
    """

    @property
    def state_key(self) -> str:
        return super().state_key.replace(type(self).__qualname__, ModelCheckpoint.__qualname__, 1)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if self.dirpath is not None and state_dict.get("dirpath") not in (None, self.dirpath):
            log.info("resuming checkpoint bookkeeping of %s in %s (best so far: %s)", state_dict["dirpath"],
                     self.dirpath, state_dict.get("best_model_path"))
            state_dict = {**state_dict, "dirpath": self.dirpath}
        super().load_state_dict(state_dict)


def instantiate_group(cfg: DictConfig | None) -> list:
    """Instantiate every entry of a config group that has a ``_target_`` (callbacks, loggers)."""
    if not cfg:
        return []
    return [hydra.utils.instantiate(c) for c in cfg.values() if isinstance(c, DictConfig) and "_target_" in c]


def train(cfg: DictConfig) -> dict[str, float]:
    """Fit (and optionally test) the configured model; returns the final logged metrics."""
    if cfg.get("seed") is not None:
        pl.seed_everything(cfg.seed, workers=True)
    log.info("Instantiating datamodule <%s>", cfg.data._target_)
    datamodule: pl.LightningDataModule = hydra.utils.instantiate(cfg.data)
    log.info("Instantiating model <%s>", cfg.model._target_)
    model: pl.LightningModule = hydra.utils.instantiate(cfg.model)
    callbacks = instantiate_group(cfg.get("callbacks"))
    loggers = instantiate_group(cfg.get("logger"))
    quiet_training_noise()  # two known messages not caused by fds (fds.loggers says which and why)
    trainer: pl.Trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers)
    for lg in loggers:
        lg.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    if cfg.get("train", True):
        trainer.fit(model=model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    if cfg.get("test", False):
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else None
        trainer.test(model=model, datamodule=datamodule, ckpt_path=best or None)
        metrics.update({k: float(v) for k, v in trainer.callback_metrics.items()})
    for lg in loggers:
        if hasattr(lg, "experiment") and type(lg).__name__ == "WandbLogger":
            lg.experiment.finish()
    return metrics
