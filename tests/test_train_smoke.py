"""`python train.py experiment=smoke` end to end: procedural scans + real photos → a few DFDN steps."""

import csv
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fds.models.checkpoint import export_training_checkpoint, load_detail_module

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_train_smoke_runs_and_logs(tmp_path):
    cmd = [sys.executable, str(ROOT / "train.py"), "experiment=smoke", f"paths.data_dir={tmp_path / 'data'}",
           f"paths.log_dir={tmp_path / 'logs'}", "hydra.run.dir=" + str(tmp_path / "run")]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = tmp_path / "run"
    assert (run / "checkpoints" / "last.ckpt").is_file()
    # the newest epoch is kept for resuming, and a real run's checkpoint (DataModule hyper-parameters included)
    # exports to inference weights through torch.load(weights_only=True)
    latest = run / "checkpoints" / "latest.ckpt"
    assert torch.load(latest, map_location="cpu", weights_only=True)["epoch"] == 1
    export_training_checkpoint(latest, tmp_path / "smoke.safetensors")
    module = load_detail_module(tmp_path / "smoke.safetensors")
    assert module.hparams.lambda_normal == 0.0 and sum(p.numel() for p in module.generator.parameters()) > 0
    assert list((run / "wandb").glob("offline-run-*/run-*.wandb"))  # W&B offline, inside the run folder
    rows = list(csv.DictReader(open(next(run.glob("csv/version_*/metrics.csv")))))
    normal_deg = [float(r["val/normal_deg"]) for r in rows if r.get("val/normal_deg")]
    geo = [float(r["train/loss_geo"]) for r in rows if r.get("train/loss_geo")]
    assert len(normal_deg) == 2 and all(0 < d < 90 for d in normal_deg)
    assert geo and all(math.isfinite(g) for g in geo)
    # the printed config matches what was run
    cfg = subprocess.run([sys.executable, str(ROOT / "train.py"), "experiment=smoke", "--cfg", "job"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert cfg.returncode == 0 and "task_name: smoke" in cfg.stdout
