"""The known noise of every training run is gone: wandb's 'anonymous' warning (fixed at its cause), the
litlogger advertisement and Lightning's LeafSpec deprecation (filtered, narrowly)."""

from __future__ import annotations

import logging
import warnings

import pytorch_lightning as pl
from pytorch_lightning.loggers import CSVLogger

from fds.loggers import LITLOGGER_TIP, WandbLogger, quiet_training_noise


def test_wandb_logger_passes_no_anonymous_setting(tmp_path, capfd, monkeypatch):
    monkeypatch.setenv("WANDB_SILENT", "false")
    logger = WandbLogger(save_dir=str(tmp_path), offline=True, project="fds-test", name="t")
    assert "anonymous" not in logger._wandb_init
    assert "anonymous" in pl.loggers.WandbLogger(save_dir=str(tmp_path), offline=True)._wandb_init  # the cause
    logger.experiment.log({"x": 1.0})
    logger.experiment.finish()
    out = capfd.readouterr()
    assert "anonymous setting has no effect" not in out.out + out.err


def test_litlogger_tip_is_dropped_and_other_lightning_info_kept(tmp_path, caplog):
    quiet_training_noise()
    with caplog.at_level(logging.INFO):
        pl.Trainer(logger=CSVLogger(str(tmp_path)), max_epochs=1, accelerator="cpu", enable_progress_bar=False)
        logging.getLogger("pytorch_lightning.utilities.rank_zero").info("GPU available: False")
    messages = [r.getMessage() for r in caplog.records]
    assert not [m for m in messages if m.startswith(LITLOGGER_TIP)]
    assert "GPU available: False" in messages


def test_lightning_leafspec_deprecation_is_filtered_there_only():
    from pytorch_lightning.utilities._pytree import _tree_flatten

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        _tree_flatten([1, 2])  # Lightning still builds torch's deprecated LeafSpec: drop the filter when not
    assert any("LeafSpec" in str(w.message) for w in seen)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        quiet_training_noise()
        _tree_flatten([1, 2])
        warnings.warn("`isinstance(treespec, LeafSpec)` is deprecated", FutureWarning, stacklevel=1)  # elsewhere
    assert [str(w.message) for w in seen] == ["`isinstance(treespec, LeafSpec)` is deprecated"]
