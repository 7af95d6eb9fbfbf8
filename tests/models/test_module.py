"""DFDNModule through a real Lightning Trainer: resume, schedule, NaN guard, validation, prediction."""

from __future__ import annotations

import copy

import pytest
import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.loggers import Logger

from fds.models.losses import geometry_loss, smooth_target

from .conftest import PATCH, compose_model
from .test_losses import _appearance_batch


def _loader(batch: dict, n: int = 2):
    return torch.utils.data.DataLoader([batch] * n, batch_size=None)


def _model(seed: int, *overrides: str):
    torch.manual_seed(seed)
    cfg = compose_model("lite", [f"units.patch_size={PATCH}", *overrides])
    return instantiate(cfg)


def _trainer(tmp_path, epochs: int, **kwargs) -> pl.Trainer:
    defaults = dict(logger=False, enable_checkpointing=False)
    defaults.update(kwargs)
    return pl.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        **defaults,
    )


SCHEDULE = ["warmup_epochs=1", "lr_decay_start_epoch=0", "lr_decay_end_epoch=2", "ema_decay=0.9"]


@pytest.mark.slow  # 45-75 s on a loaded 2-core CPU
def test_resume_continues_with_identical_weights_and_optimizer_state(tmp_path, geo_batch):
    batch = {"geo": geo_batch, "app": _appearance_batch(PATCH)}
    # A: two epochs straight, keeping the end-of-epoch-0 checkpoint
    model_a = _model(0, *SCHEDULE)
    ckpt = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_top_k=-1, every_n_epochs=1)
    trainer_a = _trainer(tmp_path, 2, enable_checkpointing=True, callbacks=[ckpt])
    trainer_a.fit(model_a, _loader(batch))
    first = sorted((tmp_path / "ckpt").glob("epoch=0*.ckpt"))
    assert len(first) == 1
    assert "train/loss_app" in trainer_a.callback_metrics  # epoch 1 alternated geo / app batches
    # B: a differently initialised model resumed from A's epoch-0 checkpoint
    model_b = _model(123, *SCHEDULE)
    assert not torch.equal(
        model_b.generator.models["shared"].pdim.down[0][0].weight,
        model_a.generator.models["shared"].pdim.down[0][0].weight,
    )
    trainer_b = _trainer(tmp_path, 2)
    trainer_b.fit(model_b, _loader(batch), ckpt_path=first[0])
    state_a, state_b = model_a.state_dict(), model_b.state_dict()
    assert state_a.keys() == state_b.keys() and any("generator_ema" in k for k in state_a)
    for key in state_a:
        torch.testing.assert_close(state_b[key], state_a[key], rtol=0, atol=0, msg=key)
    for opt_a, opt_b in zip(trainer_a.optimizers, trainer_b.optimizers, strict=True):
        sa, sb = opt_a.state_dict(), opt_b.state_dict()
        assert [g["lr"] for g in sa["param_groups"]] == [g["lr"] for g in sb["param_groups"]]
        assert sa["param_groups"][0]["lr"] == 0.5 * sa["param_groups"][0]["initial_lr"]  # epoch 1 of the 0 -> 2 decay
        for idx, st in sa["state"].items():
            for name, value in st.items():
                torch.testing.assert_close(sb["state"][idx][name], value, rtol=0, atol=0)


def test_warmup_runs_geometry_only(tmp_path, geo_batch):
    model = _model(0, "warmup_epochs=1")
    trainer = _trainer(tmp_path, 1)
    trainer.fit(model, _loader({"geo": geo_batch, "app": _appearance_batch(PATCH)}))
    metrics = trainer.callback_metrics
    assert "train/loss_geo" in metrics and "train/loss_d" in metrics and "train/loss_app" not in metrics


def test_nonfinite_step_is_skipped_counted_and_leaves_weights(tmp_path, geo_batch):
    model = _model(0)
    before = copy.deepcopy(model.state_dict())
    bad = dict(geo_batch, input=geo_batch["input"].clone())
    bad["input"][0, 0, 5, 5] = float("nan")
    trainer = _trainer(tmp_path, 1)
    trainer.fit(model, _loader(bad, 1))
    assert int(model.skipped_steps) == 2  # the D step and the G step
    after = model.state_dict()
    for key, value in before.items():
        if key != "skipped_steps":
            torch.testing.assert_close(after[key], value, rtol=0, atol=0, equal_nan=False, msg=key)


class _ImageLogger(Logger):
    def __init__(self) -> None:
        super().__init__()
        self.images: list = []

    name = "images"
    version = 0

    def log_hyperparams(self, params, *args, **kwargs) -> None:
        pass

    def log_metrics(self, metrics, step=None) -> None:
        pass

    def log_image(self, key, images, step=None, **kwargs) -> None:
        self.images.append((key, images))


def test_validation_metrics_and_panel(tmp_path, geo_batch):
    model = _model(0)
    logger = _ImageLogger()
    trainer = _trainer(tmp_path, 1, logger=logger)
    (metrics,) = trainer.validate(model, _loader(geo_batch, 1))
    assert metrics["val/disp_mae_mm"] > 0 and 0 < metrics["val/normal_deg"] < 90
    # the untrained output is near zero: its MAE is about the mean |GT| in mm
    gt_mm = geo_batch["displacement"].abs().mean().item() * model.hparams.disp_scale_mm
    assert abs(metrics["val/disp_mae_mm"] - gt_mm) < 0.5 * gt_mm
    # on the furrows' walls (wrinkle texels) an almost flat output errs more than on average
    assert metrics["val/normal_deg_wrinkles"] > metrics["val/normal_deg"]
    assert abs(metrics["val/normal_deg_wrinkles"] - metrics["val/normal_deg_wrinkles_zero"]) < 0.5 * metrics[
        "val/normal_deg_wrinkles_zero"]
    ((key, (panel,)),) = logger.images
    assert key == "val/panel" and panel.shape == (4 * PATCH, 4 * PATCH, 3) and panel.dtype.name == "uint8"


def test_validation_scores_each_patch_at_its_own_texel_size(tmp_path, geo_batch):
    """Checkpoints are selected on val/normal_deg: it must measure what evaluation measures, each patch's slopes
    over its own (du, dv), not over one size averaged over the batch."""
    from fds.metrics import displacement_normal_deg

    texel = torch.tensor([[0.28, 0.19], [0.19, 0.28], [0.5, 0.5], [0.1, 0.1]])
    batch = dict(geo_batch, texel_mm=texel)
    model = _model(0)
    (metrics,) = _trainer(tmp_path, 1).validate(model, _loader(batch, 1))
    gt_mm = batch["displacement"] * model.hparams.disp_scale_mm
    zero = displacement_normal_deg(torch.zeros_like(gt_mm), gt_mm, texel, batch["mask"]).item()
    collapsed = displacement_normal_deg(torch.zeros_like(gt_mm), gt_mm, tuple(texel.mean(0).tolist()),
                                        batch["mask"]).item()
    assert metrics["val/normal_deg_zero"] == pytest.approx(zero, rel=1e-5)
    assert abs(collapsed - zero) > 0.05 * zero  # the test can tell the two apart


def test_predict_returns_displacement_patches(tmp_path, geo_batch):
    model = _model(0)
    batch = {"input": geo_batch["input"], "region": geo_batch["region"], "origin": torch.arange(4)}
    trainer = _trainer(tmp_path, 1)
    (out,) = trainer.predict(model, _loader(batch, 1))
    assert out["displacement"].shape == (4, 1, PATCH, PATCH) and out["displacement"].abs().max() <= 1
    torch.testing.assert_close(out["displacement_mm"], out["displacement"] * model.hparams.disp_scale_mm)
    assert torch.equal(out["origin"], torch.arange(4))
    # the release's per-batch BatchNorm statistics: different output, running statistics untouched
    model_bs = _model(0, "inference_batch_stats=true")
    running = copy.deepcopy(model_bs.state_dict())
    (out_bs,) = trainer.predict(model_bs, _loader(batch, 1))
    assert not torch.allclose(out_bs["displacement"], out["displacement"])
    for key, value in running.items():
        if "running" in key:
            torch.testing.assert_close(model_bs.state_dict()[key], value, rtol=0, atol=0)


def test_normal_term_is_trained_and_logged(tmp_path, geo_batch):
    model = _model(0, "lambda_normal=100", "gan_weight=0")
    trainer = _trainer(tmp_path, 1, logger=False)
    trainer.fit(model, _loader(geo_batch, 2))
    metrics = trainer.callback_metrics
    assert 0 < metrics["train/loss_normal"] < 3  # L1 of unit normal maps: in [0, 2·sqrt(3)]
    # loss_g = 100·L_scans + 100·L_normal (no GAN term)
    expect = 100 * (metrics["train/loss_geo"] + metrics["train/loss_normal"])
    assert torch.isclose(metrics["train/loss_g"], expect, rtol=1e-4)


def test_concordance_term_is_trained_and_logged(tmp_path, geo_batch):
    model = _model(0, "lambda_normal=100", "lambda_concordance=10", "gan_weight=0")
    trainer = _trainer(tmp_path, 1)
    trainer.fit(model, _loader(geo_batch, 2))
    m = trainer.callback_metrics
    assert 0 < m["train/loss_concordance"] <= 2  # 1 − ρ_c ∈ [0, 2]
    expect = 100 * (m["train/loss_geo"] + m["train/loss_normal"]) + 10 * m["train/loss_concordance"]
    assert torch.isclose(m["train/loss_g"], expect, rtol=1e-4)


def test_rms_norm_and_detail_nmse_term_are_trained_and_logged(tmp_path, geo_batch):
    model = _model(0, "geo_norm=rms", "lambda_detail_nmse=10", "gan_weight=0")
    before = copy.deepcopy(model.generator).train()
    trainer = _trainer(tmp_path, 1)
    trainer.fit(model, _loader(geo_batch, 1))
    m = trainer.callback_metrics
    with torch.no_grad():  # the only step's forward, on the weights it started from
        out = before(geo_batch["region"], geo_batch["input"])
    y = smooth_target(geo_batch["displacement"], model.hparams.target_blur_texels, geo_batch["mask"])
    rms = geometry_loss(out.coarse, out.refined, y, geo_batch["mask"], "rms")
    assert torch.isclose(m["train/loss_geo"], rms, rtol=1e-4)
    assert 0 < m["train/loss_detail_nmse"]  # the untrained network's relief is unlike the GT's: ~1
    assert torch.isclose(m["train/loss_g"], 100 * m["train/loss_geo"] + 10 * m["train/loss_detail_nmse"], rtol=1e-4)
    with pytest.raises(Exception, match="geo_norm must be one of"):  # hydra wraps the ValueError
        _model(0, "geo_norm=l2")


def test_validation_scores_detail_agreement_pooled_over_the_epoch(tmp_path, geo_batch):
    from fds.metrics import UV_DETAIL_BAND_TEXELS, amplitude_ratio, detail_band, detail_normals_xy, pearson_r

    model = _model(0)
    half = {k: v[:2] for k, v in geo_batch.items()}
    other = {k: v[2:] for k, v in geo_batch.items()}
    (metrics,) = _trainer(tmp_path, 1).validate(model, torch.utils.data.DataLoader([half, other], batch_size=None))
    # the same numbers from the whole set at once (the batch's per-patch texel sizes; no mask → every texel)
    model.eval()
    with torch.no_grad():
        pred = model(geo_batch["input"], geo_batch["region"]).refined * model.hparams.disp_scale_mm
    gt = geo_batch["displacement"] * model.hparams.disp_scale_mm
    low, high = UV_DETAIL_BAND_TEXELS
    valid = geo_batch["mask"]
    p, t = (detail_band(detail_normals_xy(x, model._texel_mm(geo_batch)), high, low, valid) for x in (pred, gt))
    assert metrics["val/amplitude_ratio"] == pytest.approx(amplitude_ratio(p, t, valid).item(), rel=1e-4)
    assert metrics["val/detail_r"] == pytest.approx(pearson_r(p, t, valid).item(), abs=1e-4)
    assert 0 <= metrics["val/amplitude_ratio"] < 1  # the untrained network's relief is small: shrinkage shows
    assert "val/amplitude_ratio_wrinkles" in metrics and "val/detail_r_wrinkles" in metrics


def test_blurred_target_is_what_the_geometry_terms_train_on(tmp_path, geo_batch):
    model = _model(0, "lambda_normal=100", "gan_weight=0", "target_blur_texels=2.0")
    before = copy.deepcopy(model.generator).train()
    _trainer(tmp_path, 1).fit(model, _loader(geo_batch, 1))
    with torch.no_grad():  # the first (only) step's forward, on the weights it started from
        out = before(geo_batch["region"], geo_batch["input"])
    y = smooth_target(geo_batch["displacement"], 2.0, geo_batch["mask"])
    expect = geometry_loss(out.coarse, out.refined, y, geo_batch["mask"])
    raw = geometry_loss(out.coarse, out.refined, geo_batch["displacement"], geo_batch["mask"])
    got = model.trainer.callback_metrics["train/loss_geo"]
    assert torch.isclose(got, expect, rtol=1e-4) and not torch.isclose(got, raw, rtol=1e-3)
    with pytest.raises(Exception, match="target_blur_texels must be ≥ 0"):  # hydra wraps the ValueError
        _model(0, "target_blur_texels=-1")


def test_photo_px_target_blur_reads_the_photo_scale_channel(geo_batch):
    """σ = px · 2^−scale texels per texel, never below target_blur_texels; only inputs that carry the scale."""
    wide = ["generator.model.pdim.in_channels=4", "generator.model.pdrm.in_channels=5",
            "discriminator.model.in_channels=5", "target_blur_texels=1.0", "target_blur_photo_px=0.5"]
    model = _model(0, *wide)
    y, mask = geo_batch["displacement"], geo_batch["mask"]
    v = geo_batch["input"][:, :1]
    scale = torch.full_like(v, -3.0)  # 8 texels per photo px (a ~130 px face at 1024²): σ = 4 texels
    scale[1:] = 1.0  # half a texel per px (a face larger than the map): σ 0.25 → the 1-texel floor
    x = torch.cat([v, torch.zeros_like(v), torch.zeros_like(v), scale], 1)
    got = model._smooth_target(x, y, mask)
    torch.testing.assert_close(got[:1], smooth_target(y, 4.0, mask)[:1])
    torch.testing.assert_close(got[1:], smooth_target(y, 1.0, mask)[1:])
    with pytest.raises(ValueError, match="units.photo_scale=true"):
        _model(0, "target_blur_photo_px=0.5")._smooth_target(geo_batch["input"], y, mask)


@pytest.mark.parametrize("updates", [False, True])
def test_photo_batches_leave_batchnorm_statistics_to_the_scans(tmp_path, updates):
    model = _model(0, "warmup_epochs=0", "gan_weight=0", f"app_updates_bn_stats={str(updates).lower()}")
    before = copy.deepcopy(model.generator.state_dict())
    _trainer(tmp_path, 1).fit(model, _loader(_appearance_batch(PATCH), 2))  # appearance steps only
    after = model.generator.state_dict()
    stats = [k for k in before if "running_mean" in k or "running_var" in k]
    weights = [k for k in before if k.endswith(".weight") and before[k].is_floating_point()]
    assert stats and weights
    assert any(not torch.equal(before[k], after[k]) for k in weights)  # the generator did learn from the photos
    moved = [k for k in stats if not torch.equal(before[k], after[k])]
    assert (len(moved) > 0) == updates


FINE_BRANCH = {"generator": {"model": {"fine": {"_target_": "fds.models.fine.FineRefiner", "in_channels": 2,
                                                "width": 4, "dilations": [2]}}}}


def test_the_fine_branch_learns_at_its_own_rate(geo_batch):
    """``fine_lr_mult`` gives the full-resolution branch (fds.models.fine) a group of its own: Adam's first step
    moves each weight by lr · g / (|g| + eps), so the same first step is 10× larger in the branch at ×10 and equal
    elsewhere."""
    steps = {}
    for mult in (1, 10):
        torch.manual_seed(0)
        cfg = compose_model("lite", [f"units.patch_size={PATCH}", f"fine_lr_mult={mult}"])
        model = instantiate(OmegaConf.merge(cfg, FINE_BRANCH))
        opt_g, _ = model.configure_optimizers()
        assert [len(g["params"]) for g in opt_g.param_groups][1] == 6  # the branch: 3 convs, weights and biases
        gen = model.generator.models["shared"]
        before = {n: p.detach().clone() for n, p in gen.named_parameters()}
        out = model.generator(geo_batch["region"], geo_batch["input"]).refined
        (out - geo_batch["displacement"]).abs().mean().backward()
        opt_g.step()
        steps[mult] = {n: (p.detach() - before[n]).abs().max() for n, p in gen.named_parameters()}
    assert steps[1]["fine.out.weight"] > 0  # the zero-started last conv gets a gradient
    torch.testing.assert_close(steps[10]["fine.out.weight"], 10 * steps[1]["fine.out.weight"], rtol=1e-3, atol=0)
    torch.testing.assert_close(steps[10]["pdrm.up.0.1.weight"], steps[1]["pdrm.up.0.1.weight"], rtol=1e-3, atol=0)
