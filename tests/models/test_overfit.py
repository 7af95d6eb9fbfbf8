"""The lite DFDN overfits a fixed batch through the real Lightning training step."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
from hydra.utils import instantiate

from fds.models.losses import geometry_loss

from .conftest import PATCH, compose_model

STEPS = 150


def _geo_loss(model, batch) -> float:
    with torch.no_grad():  # train-mode BatchNorm: the statistics the training steps used
        out = model.generator(batch["region"], batch["input"])
        return geometry_loss(out.coarse, out.refined, batch["displacement"], batch["mask"]).item()


@pytest.mark.slow  # ~35 s on one shared CPU core
def test_lite_overfits_fixed_batch(geo_batch, furrow_basis):
    torch.manual_seed(0)
    cfg = compose_model(
        "lite", [f"units.patch_size={PATCH}", "optimizer.lr=1e-3", "gan_weight=0", "warmup_epochs=0"]
    )
    model = instantiate(cfg, generator={"model": {"basis": {"source": furrow_basis}}}).train()
    before = _geo_loss(model, geo_batch)
    loader = torch.utils.data.DataLoader([geo_batch] * STEPS, batch_size=None)
    trainer = pl.Trainer(
        max_epochs=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, loader)
    after = _geo_loss(model.train(), geo_batch)
    assert before > 0.1  # the furrows are real signal, not a near-zero target
    assert after < before / 10, f"geometry loss {before:.4f} -> {after:.4f}: less than 10x down in {STEPS} steps"
