"""``train(cfg)``: build data, model, callbacks, loggers and trainer from a Hydra config and fit.

Used by ``train.py`` and the ``fds-train`` console script (lightning-hydra-template style): ``train`` returns
the monitored validation metric (the checkpoint callback's best score), what a Hydra sweeper minimises.
"""

from __future__ import annotations

import logging
from typing import Any, cast

import hydra
import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import ModelCheckpoint

from fds.loggers import instantiate_group, quiet_training_noise

log = logging.getLogger(__name__)

#: Each detail unit (``configs/units``) → the config keys that read it. They must all hold the unit's value.
UNIT_READERS: dict[str, tuple[str, ...]] = {
    "disp_scale_mm": ("data.scans.disp_scale_mm", "model.disp_scale_mm"),
    "patch_size": ("data.scans.patch_size", "data.wild.patch_size", "model.generator.model.basis.patch_size"),
    "regions": ("data.scans.regions", "data.wild.regions", "model.generator.regions"),
    "map_resolution": ("data.scans.generator.resolution", "data.wild.resolution"),
    "log_input": ("data.scans.log_input", "data.wild.log_input"),
    "shading_cue": ("data.scans.shading_cue", "data.wild.shading_cue"),
    "photo_scale": ("data.scans.photo_scale", "data.wild.photo_scale"),
    "luma": ("data.scans.luma", "data.wild.luma"),
}


def check_units(cfg: DictConfig) -> None:
    """Refuse a config whose data or model keys disagree with its ``units`` (e.g. ``data.scans.disp_scale_mm=0.5``
    given on the command line instead of ``units.disp_scale_mm=0.5``): the metrics would be silently mis-scaled."""
    if OmegaConf.select(cfg, "units") is None:
        raise ValueError("the config has no `units` block (configs/units/default.yaml): add `- units: default` to "
                         "its defaults list")
    wrong = []
    for unit, keys in UNIT_READERS.items():
        units = cast(dict, OmegaConf.to_container(cfg.units, resolve=True))
        if unit not in units:  # a units block written before this unit existed: its readers keep their defaults
            continue
        want = units[unit]
        for key in keys:
            got = OmegaConf.select(cfg, key, default=None)
            got = OmegaConf.to_container(got, resolve=True) if OmegaConf.is_config(got) else got
            if got is not None and got != want:
                wrong.append(f"{key}={got} but units.{unit}={want}")
    if wrong:
        raise ValueError("inconsistent detail units: " + "; ".join(wrong) + ". Set units.<name> (configs/units, "
                         "or an experiment's `units:` block) instead of the keys that read it")


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


def monitored_metric(trainer: pl.Trainer) -> float | None:
    """The best value of the checkpoint callback's monitored metric (``val/normal_deg``), else its last logged
    value; None when nothing is monitored or it was never logged."""
    ckpt = trainer.checkpoint_callback
    monitor = getattr(ckpt, "monitor", None)
    if monitor is None:
        return None
    best = getattr(ckpt, "best_model_score", None)
    if best is not None:
        return float(best)
    value = trainer.callback_metrics.get(monitor)
    return None if value is None else float(value)


def train(cfg: DictConfig) -> float | None:
    """Fit (and optionally test) the configured model; returns :func:`monitored_metric` (logged too)."""
    check_units(cfg)
    if cfg.get("seed") is not None:
        pl.seed_everything(cfg.seed, workers=True)
    log.info("Instantiating datamodule <%s>", cfg.data._target_)
    datamodule: pl.LightningDataModule = hydra.utils.instantiate(cfg.data)
    log.info("Instantiating model <%s>", cfg.model._target_)
    model: pl.LightningModule = hydra.utils.instantiate(cfg.model)
    if cfg.get("init_weights"):
        from fds.models.checkpoint import load_start_weights

        log.info("Starting from the generator weights of %s", cfg.init_weights)
        load_start_weights(model, cfg.init_weights, luma=bool(OmegaConf.select(cfg, "units.luma", default=False)))
    callbacks = instantiate_group(cfg.get("callbacks"))
    loggers = instantiate_group(cfg.get("logger"))
    quiet_training_noise()  # two known messages not caused by fds (fds.loggers says which and why)
    trainer: pl.Trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers)
    for lg in loggers:
        lg.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    if cfg.get("train", True):
        trainer.fit(model=model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    metric = monitored_metric(trainer)
    if cfg.get("test", False):
        ckpt = trainer.checkpoint_callback
        best = getattr(ckpt, "best_model_path", None) if ckpt else None
        trainer.test(model=model, datamodule=datamodule, ckpt_path=best or None)
    log.info("final metrics: %s", {k: round(float(v), 6) for k, v in trainer.callback_metrics.items()})
    if metric is not None:
        log.info("monitored metric (best): %.6f", metric)
    for lg in loggers:
        if hasattr(lg, "experiment") and type(lg).__name__ == "WandbLogger":
            lg.experiment.finish()
    return metric
