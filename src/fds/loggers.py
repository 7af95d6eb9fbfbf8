"""Run loggers (training and evaluation) built from the config, without the noise every run used to print.

- :func:`instantiate_group`: a config group's entries (``logger``, ``callbacks``), for ``train`` and ``eval``
  alike.
- :class:`WandbLogger`: Lightning's W&B logger always passes ``anonymous=None`` to ``wandb.init``; wandb (≥ 0.19)
  deprecated that setting and warns "The anonymous setting has no effect" for any value that is passed, even
  None. This subclass drops the key when it is None, so wandb never sees it (the cause, not a filter).
- :func:`quiet_training_noise` filters, deliberately, two messages whose cause is not in fds:

  * Lightning logs an advertisement for its hosted ``litlogger`` service at INFO on every ``Trainer`` built
    without that logger. fds logs offline by design (W&B offline + CSV inside the run folder), so the tip is
    never actionable; a logging filter drops exactly that message.
  * torch ≥ 2.10 deprecates ``torch.utils._pytree.LeafSpec`` (a FutureWarning on every construction) and
    pytorch-lightning 2.6.6, the newest release, still builds one each time it wraps a dataloader
    (``pytorch_lightning/utilities/_pytree.py``). Nothing fds can change; the warning is ignored for that
    Lightning module only, so the same deprecation elsewhere still shows. Drop the filter once Lightning
    stops using LeafSpec.
"""

from __future__ import annotations

import logging
import warnings

import hydra
from omegaconf import DictConfig
from pytorch_lightning.loggers import WandbLogger as _LightningWandbLogger

LIGHTNING_TIP_LOGGER = "pytorch_lightning.utilities.rank_zero"
LITLOGGER_TIP = "💡 Tip: For seamless cloud logging"


class WandbLogger(_LightningWandbLogger):
    """``pytorch_lightning.loggers.WandbLogger`` that does not pass ``anonymous=None`` on to ``wandb.init``."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self._wandb_init.get("anonymous") is None:
            self._wandb_init.pop("anonymous", None)


class _DropLitLoggerTip(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(LITLOGGER_TIP)


def quiet_training_noise() -> None:
    """Install the two filters described in the module doc (idempotent)."""
    logger = logging.getLogger(LIGHTNING_TIP_LOGGER)
    if not any(isinstance(f, _DropLitLoggerTip) for f in logger.filters):
        logger.addFilter(_DropLitLoggerTip())
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
                            category=FutureWarning, module=r"pytorch_lightning\.utilities\._pytree")


def instantiate_group(cfg: DictConfig | None) -> list:
    """Instantiate every entry of a config group that has a ``_target_`` (callbacks, loggers)."""
    if not cfg:
        return []
    return [hydra.utils.instantiate(c) for c in cfg.values() if isinstance(c, DictConfig) and "_target_" in c]
