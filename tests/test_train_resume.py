"""Resuming a training run from latest.ckpt keeps the best-checkpoint bookkeeping (`experiment=smoke` sizes)."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from pytorch_lightning.callbacks import ModelCheckpoint

from fds.training import ResumableCheckpoint

ROOT = Path(__file__).resolve().parents[1]


def test_best_score_survives_a_new_run_folder(tmp_path):
    """Lightning alone drops the best score when the folder changes (the first epoch after a resume was then marked
    best even when worse); the callback fds configures keeps it, under the same state key."""
    old = ModelCheckpoint(dirpath=tmp_path / "run1", monitor="val/normal_deg", mode="min")
    best = str(tmp_path / "run1" / "epoch_003.ckpt")
    old.best_model_score, old.best_model_path, old.best_k_models = torch.tensor(2.5), best, {best: torch.tensor(2.5)}
    old.kth_best_model_path, old.kth_value = best, torch.tensor(2.5)
    state = old.state_dict()
    plain = ModelCheckpoint(dirpath=tmp_path / "run2", monitor="val/normal_deg", mode="min")
    with pytest.warns(UserWarning, match="dirpath has changed"):
        plain.load_state_dict(state)
    assert plain.best_model_score is None  # the bug: any next epoch becomes "best"
    kept = ResumableCheckpoint(dirpath=tmp_path / "run2", monitor="val/normal_deg", mode="min")
    assert kept.state_key == old.state_key  # runs saved with the plain callback resume too
    kept.load_state_dict(state)
    assert float(kept.best_model_score) == 2.5 and kept.best_k_models == {best: torch.tensor(2.5)}
    assert kept.best_model_path == best and kept.dirpath == str(tmp_path / "run2")
    one_process = SimpleNamespace(strategy=SimpleNamespace(reduce_boolean_decision=lambda decision: decision))
    assert not kept.check_monitor_top_k(one_process, torch.tensor(2.6))  # a worse epoch is not the best
    assert kept.check_monitor_top_k(one_process, torch.tensor(2.4))


def _train(tmp_path: Path, run: str, *overrides: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(ROOT / "train.py"), "experiment=smoke", "logger=csv",
           f"paths.data_dir={tmp_path / 'data'}", f"paths.log_dir={tmp_path / 'logs'}",
           f"hydra.run.dir={tmp_path / run}", *overrides]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _val_scores(run: Path) -> dict[int, float]:
    rows = csv.DictReader(open(next(run.glob("csv/version_*/metrics.csv"))))
    return {int(r["epoch"]): float(r["val/normal_deg"]) for r in rows if r.get("val/normal_deg")}


def _monitor_state(ckpt: Path) -> dict:
    callbacks = torch.load(ckpt, map_location="cpu", weights_only=True)["callbacks"]
    [state] = [v for k, v in callbacks.items() if "val/normal_deg" in k]
    return state


@pytest.mark.slow
def test_resume_keeps_the_best_score(tmp_path):
    """A run stopped after its first checkpoint, resumed for two more epochs in a new run folder: no dirpath
    warning, the best score of the first run is still known after the resume, and the best checkpoint at the
    end is the epoch with the lowest validation error over both runs (never a worse epoch)."""
    _train(tmp_path, "run1", "trainer.max_epochs=1")
    latest = tmp_path / "run1" / "checkpoints" / "latest.ckpt"
    first = _monitor_state(latest)
    assert first["best_model_score"] is not None
    resumed = _train(tmp_path, "run2", "trainer.max_epochs=3", f"ckpt_path={latest}")
    assert "dirpath has changed" not in resumed.stderr
    scores = {**_val_scores(tmp_path / "run1"), **_val_scores(tmp_path / "run2")}
    assert sorted(scores) == [0, 1, 2]
    start = torch.load(latest, map_location="cpu", weights_only=True)
    end = torch.load(tmp_path / "run2" / "checkpoints" / "latest.ckpt", map_location="cpu", weights_only=True)
    assert (start["epoch"], end["epoch"]) == (0, 2) and end["global_step"] > start["global_step"] > 0
    state = _monitor_state(tmp_path / "run2" / "checkpoints" / "latest.ckpt")
    best_epoch = min(scores, key=scores.get)
    assert float(state["best_model_score"]) == pytest.approx(scores[best_epoch], rel=1e-6)
    assert Path(state["best_model_path"]).name == f"epoch_{best_epoch:03d}.ckpt"
    assert Path(state["best_model_path"]).is_file()
