"""``DFDNModule``: wires the DFDN generator(s), discriminator(s), losses and optimizers; the math lives elsewhere.

Units
-----
Networks work in *network units*: ``displacement_mm = d * disp_scale_mm`` with d in [-1, 1] (the refined
output is a Tanh) and ``disp_scale_mm`` a hyper-parameter (default 2.0 mm: the deepest nasolabial folds reach
about 2 mm). The paper never states its scale; change it together with the data module's.

Batch contract
--------------
- geometry batch (scans), all float32:
  ``input [B, Cin, H, W]`` (paper: HSV V channel, per-patch mean removed, x2; Cin = 1, or 3 with RGB),
  ``displacement [B, 1, H, W]`` GT in network units (mm / disp_scale_mm, in [-1, 1]),
  ``mask [B, 1, H, W]`` (1 = valid texel; optional), ``region`` list[str] or str (optional when one model
  serves every region), ``texel_mm [B, 2]`` the surface size (du, dv) of one texel of each patch in mm (for the
  normal term and the validation normal metric; the ``texel_mm`` hyper-parameter stands in when absent),
  ``weight [B, 1, H, W]`` (optional, ≥ 1) per-texel weight of the L1 and normal terms (``data.scans.flat_line_weight``).
- appearance batch (wild photos): ``input [B, Cin, H, W]``, ``texture [B, 3, H, W]`` in [0, 1],
  ``visibility [B, 1, H, W]`` in [0, 1], ``position_mm [B, 3, H, W]`` proxy positions (mm, model frame),
  ``normal [B, 3, H, W]`` unit proxy normals, ``albedo [B, 3, H, W]``, ``sh [B, 3, 9]`` radiance SH in the
  model frame (``fds.render.shading`` conventions), ``region``.
- a training batch is a geometry batch, an appearance batch, or ``{"geo": geometry, "app": appearance}``
  (e.g. a ``CombinedLoader``). Validation batches are geometry batches (or such a dict; only ``geo`` is used).
  Prediction batches need ``input`` (and ``region``); other keys are passed through to the output.

Schedule (paper)
----------------
For the first ``warmup_epochs`` only supervised steps run: D update (GAN loss), then G update with
``gan_weight * L_adv + lambda_geo * L_scans (+ lambda_normal * L_normal)``, where L_scans is the L1 of both the
PCA reconstruction and the refined output and L_normal the L1 between their metric normal maps (not in the
paper; off by default). Afterwards, when appearance data is present, batches alternate: even ``batch_idx`` supervised,
odd ``batch_idx`` unsupervised (G only: ``lambda_geo * eta_app * L_recon`` plus, if ``adv_on_app``, the
adversarial term on the wild patch). Both optimizers' learning rates stay constant until
``lr_decay_start_epoch`` and then decay linearly to 0 at ``lr_decay_end_epoch`` (default: the trainer's
``max_epochs``); they are set from the epoch number at each epoch start, so resuming needs no scheduler
state. A step whose loss or gradient norm is not finite is skipped and counted (``skipped_steps``
buffer, logged as ``train/skipped_steps``), and the BatchNorm statistics of that batch's forward are
undone. Mixed precision comes from the trainer (``precision="bf16-mixed"`` on GPU, 32 on CPU); the
appearance loss always runs in float32.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

import pytorch_lightning as pl
import torch
from torch import nn

from fds.data.patches import in_channels
from fds.metrics import (
    UV_DETAIL_BAND_TEXELS,
    DetailAgreement,
    detail_band,
    detail_normals_xy,
    displacement_mae_mm,
    displacement_normal_deg,
    wrinkle_relief_mask,
)
from fds.models.generator import GeneratorOutput, RegionModels
from fds.models.losses import (
    GEO_NORMS,
    appearance_loss,
    detail_concordance_loss,
    detail_nmse_loss,
    gan_loss_d,
    gan_loss_g,
    geometry_loss,
    normal_loss,
    smooth_target,
    smooth_target_varying,
)
from fds.models.panels import make_panel
from fds.render.normals import normals_from_displacement

#: Input widths whose last channel is the photo scale (``fds.data.patches``: "v_scale", "v_cue_scale", "y_cue_scale").
SCALE_INPUT_CHANNELS = (in_channels("v_scale"), in_channels("v_cue_scale"))

#: Adam as in the release code (lr 2e-4, beta1 0.5); the paper trains with lr 1e-4.
DEFAULT_OPTIMIZER = partial(torch.optim.Adam, lr=2e-4, betas=(0.5, 0.999))
APPEARANCE_KEYS = ("texture", "visibility", "position_mm", "normal", "albedo", "sh")


class LinearDecay:
    """LR factor: 1 before epoch ``start``, then linear to 0 at epoch ``end`` (None: constant)."""

    def __init__(self, start: int, end: int | None) -> None:
        self.start, self.end = start, end

    def __call__(self, epoch: int) -> float:
        if self.end is None or self.end <= self.start or epoch < self.start:
            return 1.0
        return max(0.0, 1.0 - (epoch - self.start) / (self.end - self.start))


def split_batch(batch: Any) -> tuple[Mapping | None, Mapping | None]:
    """``(geometry_batch | None, appearance_batch | None)`` from any of the accepted training batch forms."""
    if not isinstance(batch, Mapping):
        raise TypeError(f"DFDN batches are dicts (see fds.models.module), got {type(batch).__name__}")
    if "geo" in batch or "app" in batch:
        return batch.get("geo"), batch.get("app")
    if "displacement" in batch:
        return batch, None
    if all(k in batch for k in APPEARANCE_KEYS):
        return None, batch
    raise KeyError(
        "batch is neither a geometry batch (needs 'input', 'displacement') nor an appearance batch "
        f"(needs 'input', {', '.join(APPEARANCE_KEYS)}); got keys {sorted(batch)}"
    )


def _as_region_models(model: nn.Module) -> RegionModels:
    return model if isinstance(model, RegionModels) else RegionModels(model, regions=["all"], shared=True)


class DFDNModule(pl.LightningModule):
    """DFDN conditional GAN with geometry and appearance losses (manual optimisation of G and D).

    Args:
        generator: a :class:`~fds.models.generator.DetailGenerator`, or :class:`RegionModels` of them.
        discriminator: a :class:`~fds.models.discriminator.PatchDiscriminator`, or :class:`RegionModels` of them.
        optimizer: partial optimizer, called as ``optimizer(params=...)`` once for G and once for D
            (paper: Adam, lr 1e-4, betas (0.5, 0.999)).
        gan_mode: ``lsgan`` (paper), ``vanilla`` or ``hinge``.
        lambda_geo: λ, weight of the L1 terms (paper: 100).
        lambda_normal: weight of the normal term on scans (:func:`~fds.models.losses.normal_loss` of the
            refined output; not in the paper, 0 turns it off): trains the slopes the normal-angle metric scores.
        lambda_concordance: weight of the amplitude-keeping term on scans
            (:func:`~fds.models.losses.detail_concordance_loss` of the refined output: 1 − the concordance of the
            high-passed detail normals; 0 turns it off). L1 and normal terms shrink detail the input leaves unsure
            towards 0; this term's optimum carries the GT's amplitude (validation: ``val/amplitude_ratio``).
        concordance_sigma_texels: high-pass σ (texels) of that term's detail normals (0: none); also the
            σ of the ``lambda_detail_nmse`` term.
        lambda_detail_nmse: weight of :func:`~fds.models.losses.detail_nmse_loss` of the refined output (the
            normalised squared error of the high-passed detail normals, whose optimum is their conditional mean;
            0 turns it off).
        geo_norm: ``l1`` (paper) or ``rms``: the norm of the two geometry terms (L_scans). An L1's optimum is
            the conditional median, which drops grooves whose place the input leaves unsure; an RMS keeps their
            average (:func:`~fds.models.losses.masked_rms`).
        target_blur_texels: σ (texels) of a Gaussian on the GT before the L1, normal and concordance terms
            (:func:`~fds.models.losses.smooth_target`; 0: the GT as it is).
        target_blur_photo_px: σ in *photo pixels* instead, per texel through the photo scale (the input's last
            channel, log2 px per texel; needs ``units.photo_scale``), never below ``target_blur_texels``: the GT
            cut to what the photo behind each sample could show (at 1024² texels one photo pixel spans ~7 texels
            of a 150 px face and ~1 of a 1000 px one); 0: off.
        eta_app: η, weight of the appearance loss inside the L1 term (paper: 0.5).
        app_updates_bn_stats: let appearance (photo) batches update the generator's BatchNorm running statistics.
            Off by default: measured on dfdn_geo_app, photo batches moved the statistics away from the scans' and
            the validation error rose by 0.015° (0.24° on wrinkle texels) in 5 epochs, all of which recalibrating
            the statistics on scan patches undid.
        gan_weight: weight of the adversarial term (0 turns the discriminator off).
        adv_on_app: add the adversarial term on appearance steps too.
        disp_scale_mm: mm per network unit of displacement.
        texel_mm: surface size of one texel in mm (a number or (du, dv)) for geometry batches that carry no
            ``texel_mm`` of their own (fds.data's always do); None: such batches are refused where it is needed.
        warmup_epochs: supervised-only epochs before appearance steps start (paper: 15).
        lr_decay_start_epoch / lr_decay_end_epoch: linear LR decay window (paper: 100 → 250).
        ema_decay: keep an exponential moving average of G with this decay (None: off); validation and
            prediction then use the average.
        grad_clip_norm: clip each network's gradient norm (None: no clipping).
        panel_rows: rows of the validation image panel (0: no panels).
        inference_batch_stats: normalise with each prediction batch's own BatchNorm statistics, as the
            release does (it never calls ``.eval()``); running statistics are left untouched.
        fine_lr_mult: learning rate of the generator's full-resolution branch (:mod:`fds.models.fine`, if it has
            one) as a multiple of the optimizer's: the branch starts at zero and learns from there.

    A fine-tuning run starts from exported generator weights through
    :func:`fds.models.checkpoint.load_start_weights` (``train()`` calls it for the config's ``init_weights``).
    """

    skipped_steps: torch.Tensor  # buffer: steps skipped for a non-finite loss or gradient

    if TYPE_CHECKING:  # the constructor's arguments, as save_hyperparameters() stores them

        @property
        def hparams(self) -> Any: ...

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer] = DEFAULT_OPTIMIZER,
        gan_mode: str = "lsgan",
        lambda_geo: float = 100.0,
        lambda_normal: float = 0.0,
        lambda_concordance: float = 0.0,
        concordance_sigma_texels: float = 6.0,
        lambda_detail_nmse: float = 0.0,
        geo_norm: str = "l1",
        target_blur_texels: float = 0.0,
        target_blur_photo_px: float = 0.0,
        eta_app: float = 0.5,
        app_updates_bn_stats: bool = False,
        gan_weight: float = 1.0,
        adv_on_app: bool = True,
        disp_scale_mm: float = 2.0,
        texel_mm: float | tuple[float, float] | None = None,
        warmup_epochs: int = 15,
        lr_decay_start_epoch: int = 100,
        lr_decay_end_epoch: int | None = None,
        ema_decay: float | None = None,
        grad_clip_norm: float | None = None,
        panel_rows: int = 4,
        inference_batch_stats: bool = False,
        fine_lr_mult: float = 1.0,
    ) -> None:
        super().__init__()
        if gan_mode not in ("lsgan", "vanilla", "hinge"):
            raise ValueError(f"gan_mode must be 'lsgan', 'vanilla' or 'hinge', got {gan_mode!r}")
        if geo_norm not in GEO_NORMS:
            raise ValueError(f"geo_norm must be one of {GEO_NORMS}, got {geo_norm!r}")
        if disp_scale_mm <= 0:
            raise ValueError(f"disp_scale_mm must be positive mm per network unit, got {disp_scale_mm}")
        if texel_mm is not None and min(texel_mm if isinstance(texel_mm, Sequence) else [texel_mm]) <= 0:
            raise ValueError(f"texel_mm must be positive mm per texel, got {texel_mm}")
        if target_blur_texels < 0:
            raise ValueError(f"target_blur_texels must be ≥ 0 texels, got {target_blur_texels}")
        if target_blur_photo_px < 0:
            raise ValueError(f"target_blur_photo_px must be ≥ 0 photo pixels, got {target_blur_photo_px}")
        if ema_decay is not None and not 0.0 < ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in (0, 1) or None, got {ema_decay}")
        if fine_lr_mult <= 0:
            raise ValueError(f"fine_lr_mult must be a positive multiplier of the learning rate, got {fine_lr_mult}")
        # Networks and the optimizer factory stay out of the checkpoint's hyper-parameters: only plain values
        # there, so checkpoints load with torch.load(weights_only=True) (Lightning's default).
        self.save_hyperparameters(logger=False, ignore=["generator", "discriminator", "optimizer"])
        self.optimizer_factory = optimizer
        self.automatic_optimization = False
        self.generator = _as_region_models(generator)
        self.discriminator = _as_region_models(discriminator)
        self.generator_ema = copy.deepcopy(self.generator).requires_grad_(False) if ema_decay else None
        self.register_buffer("skipped_steps", torch.zeros((), dtype=torch.long))
        # validation detail agreement (r, amplitude ratio), pooled over the epoch: every valid texel / wrinkle texels
        self.val_detail = {"": DetailAgreement(), "_wrinkles": DetailAgreement()}

    # ---------------------------------------------------------------- inference
    @property
    def inference_generator(self) -> RegionModels:
        return self.generator_ema if self.generator_ema is not None else self.generator

    def forward(self, x: torch.Tensor, region: str | list[str] | None = None) -> GeneratorOutput:
        """Run the (EMA) generator on preprocessed patches ``x [B, Cin, H, W]``."""
        return self.inference_generator(region, x)

    def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> dict[str, Any]:
        """``{"displacement": [B,1,H,W] network units, "displacement_mm": [B,1,H,W] mm, **other batch keys}``."""
        if not isinstance(batch, Mapping) or "input" not in batch:
            raise KeyError("prediction batches are dicts with 'input' [B, Cin, H, W] (and 'region')")
        gen = self.inference_generator
        if self.hparams.inference_batch_stats:
            with _batch_stats(gen):
                out = gen(batch.get("region"), batch["input"])
        else:
            out = gen(batch.get("region"), batch["input"])
        disp = out.refined.float()
        extra = {k: v for k, v in batch.items() if k != "input"}
        return {**extra, "displacement": disp, "displacement_mm": disp * self.hparams.disp_scale_mm}

    # ---------------------------------------------------------------- training
    def _optimizer_pair(self) -> list[Any]:
        """``[G's, D's]`` Lightning-wrapped optimizers (configure_optimizers returns both)."""
        opts = self.optimizers()
        return list(opts) if isinstance(opts, list) else [opts]

    def configure_optimizers(self):
        # the full-resolution branch (fds.models.fine) starts at zero: its own group lets it learn faster
        fine = [p for n, p in self.generator.named_parameters() if ".fine." in n]
        rest = [p for n, p in self.generator.named_parameters() if ".fine." not in n]
        opt_g = self.optimizer_factory(params=[{"params": rest}] + ([{"params": fine}] if fine else []))
        if fine:
            opt_g.param_groups[1]["lr"] *= self.hparams.fine_lr_mult
        opt_d = self.optimizer_factory(params=self.discriminator.parameters())
        for opt in (opt_g, opt_d):
            for group in opt.param_groups:
                group.setdefault("initial_lr", group["lr"])
        return [opt_g, opt_d]

    def lr_factor(self, epoch: int) -> float:
        """Multiplier of the initial learning rates during ``epoch`` (0-based)."""
        end = self.hparams.lr_decay_end_epoch
        if end is None and self._trainer is not None and (self.trainer.max_epochs or -1) > 0:
            end = self.trainer.max_epochs
        return LinearDecay(self.hparams.lr_decay_start_epoch, end)(epoch)

    def on_train_epoch_start(self) -> None:
        # Set from the epoch number rather than stepped, so a resumed run gets the same rates.
        factor = self.lr_factor(self.current_epoch)
        for opt in self._optimizer_pair():
            for group in opt.optimizer.param_groups:
                group["lr"] = group["initial_lr"] * factor
        self.log("train/lr_factor", factor, on_step=False, on_epoch=True)

    def training_step(self, batch: Any, batch_idx: int) -> None:
        geo, app = split_batch(batch)
        warm = self.current_epoch < self.hparams.warmup_epochs
        skipped_before = int(self.skipped_steps)
        bn_state = _bn_snapshot(self.generator, self.discriminator)
        if geo is None:
            if app is not None and not warm:
                self._appearance_step(app)
        elif app is not None and not warm and batch_idx % 2 == 1:
            self._appearance_step(app)
        else:
            self._geometry_step(geo)
        if int(self.skipped_steps) != skipped_before:  # non-finite forward: undo its BatchNorm statistics
            _bn_restore(bn_state)

    def _geometry_step(self, geo: Mapping) -> None:
        opt_g, opt_d = self._optimizer_pair()
        x, y, mask, region = geo["input"], geo["displacement"], geo.get("mask"), geo.get("region")
        batch = x.shape[0]
        out = self.generator(region, x)
        use_gan = self.hparams.gan_weight > 0
        if use_gan:
            self.toggle_optimizer(opt_d)
            real = self.discriminator(region, x, y).float()
            fake = self.discriminator(region, x, out.refined.detach()).float()
            loss_d = gan_loss_d(real, fake, self.hparams.gan_mode)
            self._guarded_step(opt_d, loss_d, self.discriminator)
            self.untoggle_optimizer(opt_d)
            self.log_dict(
                {"train/loss_d": loss_d.detach(), "train/d_real": real.mean(), "train/d_fake": fake.mean()},
                batch_size=batch,
            )
        self.toggle_optimizer(opt_g)
        y = self._smooth_target(x, y.float(), mask)
        # per-texel weights (more under colour-only marks, fds.data.scans) for the L1 and normal terms only
        weighted = mask if "weight" not in geo or mask is None else mask * geo["weight"]
        loss_geo = geometry_loss(out.coarse.float(), out.refined.float(), y, weighted, self.hparams.geo_norm)
        loss_g = self.hparams.lambda_geo * loss_geo
        if self.hparams.lambda_normal > 0:
            scale = self.hparams.disp_scale_mm
            loss_n = normal_loss(out.refined.float() * scale, y * scale, self._texel_mm(geo), weighted)
            loss_g = loss_g + self.hparams.lambda_normal * loss_n
            self.log("train/loss_normal", loss_n.detach(), batch_size=batch)
        if self.hparams.lambda_concordance > 0:
            scale = self.hparams.disp_scale_mm
            loss_c = detail_concordance_loss(out.refined.float() * scale, y * scale, self._texel_mm(geo), mask,
                                             self.hparams.concordance_sigma_texels)
            loss_g = loss_g + self.hparams.lambda_concordance * loss_c
            self.log("train/loss_concordance", loss_c.detach(), batch_size=batch)
        if self.hparams.lambda_detail_nmse > 0:
            scale = self.hparams.disp_scale_mm
            loss_m = detail_nmse_loss(out.refined.float() * scale, y * scale, self._texel_mm(geo), mask,
                                      self.hparams.concordance_sigma_texels)
            loss_g = loss_g + self.hparams.lambda_detail_nmse * loss_m
            self.log("train/loss_detail_nmse", loss_m.detach(), batch_size=batch)
        if use_gan:
            loss_adv = gan_loss_g(self.discriminator(region, x, out.refined).float(), self.hparams.gan_mode)
            loss_g = loss_g + self.hparams.gan_weight * loss_adv
            self.log("train/loss_g_adv", loss_adv.detach(), batch_size=batch)
        if self._guarded_step(opt_g, loss_g, self.generator):
            self._update_ema()
        self.untoggle_optimizer(opt_g)
        self.log("train/loss_geo", loss_geo.detach(), batch_size=batch, prog_bar=True)
        self.log("train/loss_g", loss_g.detach(), batch_size=batch, prog_bar=True)
        self.log("train/skipped_steps", self.skipped_steps.float(), batch_size=batch)

    def _smooth_target(self, x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """The GT the losses compare with: blurred by ``target_blur_texels``, or, with ``target_blur_photo_px``, by
        that many photo pixels through the photo scale (``x``'s last channel, log2 px per texel: σ = px · 2^−scale
        texels, at least ``target_blur_texels``): the band the photo the sample was unwrapped from can show."""
        px = self.hparams.target_blur_photo_px
        if px <= 0:
            return smooth_target(y, self.hparams.target_blur_texels, mask)
        if x.shape[1] not in SCALE_INPUT_CHANNELS:
            raise ValueError(f"model.target_blur_photo_px={px} reads the photo scale as the last input channel, but "
                             f"the input has {x.shape[1]} channels: train with units.photo_scale=true "
                             f"(experiment=dfdn_photo_cue_scale) or set it to 0")
        sigma = (px * torch.exp2(-x[:, -1:].float())).clamp_min(self.hparams.target_blur_texels)
        return smooth_target_varying(y, sigma, mask)

    def _texel_mm(self, geo: Mapping) -> torch.Tensor | float | tuple[float, float]:
        """Texel size (du, dv) in mm on the surface of each patch: ``geo["texel_mm"]`` ``[B, 2]`` (as
        :func:`fds.metrics.normal_error` takes it), else the ``texel_mm`` hyper-parameter."""
        if "texel_mm" in geo:
            return torch.as_tensor(geo["texel_mm"]).float().reshape(-1, 2)
        if self.hparams.texel_mm is None:
            raise KeyError("this geometry batch has no 'texel_mm' [B, 2] (mm per texel along u and v; fds.data.scans "
                           "batches carry it) and the module has no texel_mm fallback: add it to the batch")
        t = self.hparams.texel_mm
        return (float(t[0]), float(t[1])) if isinstance(t, Sequence) else float(t)

    def _appearance_step(self, app: Mapping) -> None:
        opt_g, _ = self._optimizer_pair()
        x, region = app["input"], app.get("region")
        batch = x.shape[0]
        self.toggle_optimizer(opt_g)
        bn_state = None if self.hparams.app_updates_bn_stats else _bn_snapshot(self.generator)
        out = self.generator(region, x)
        with torch.autocast(device_type=self.device.type, enabled=False):
            loss_app = appearance_loss(
                out.refined.float() * self.hparams.disp_scale_mm,
                app["position_mm"].float(),
                app["normal"].float(),
                app["albedo"].float(),
                app["sh"].float(),
                app["texture"].float(),
                app["visibility"].float(),
            )
        loss_g = self.hparams.lambda_geo * self.hparams.eta_app * loss_app
        if self.hparams.gan_weight > 0 and self.hparams.adv_on_app:
            loss_adv = gan_loss_g(self.discriminator(region, x, out.refined).float(), self.hparams.gan_mode)
            loss_g = loss_g + self.hparams.gan_weight * loss_adv
        stepped = self._guarded_step(opt_g, loss_g, self.generator)
        if bn_state is not None:  # normalised by the photo batch's own statistics; running stats stay the scans'
            _bn_restore(bn_state)  # (after backward: autograd saved the buffers' versions)
        if stepped:
            self._update_ema()
        self.untoggle_optimizer(opt_g)
        self.log("train/loss_app", loss_app.detach(), batch_size=batch, prog_bar=True)
        self.log("train/loss_g_app", loss_g.detach(), batch_size=batch)

    def _guarded_step(self, opt: Any, loss: torch.Tensor, module: nn.Module) -> bool:
        """Backward + step unless the loss or the gradient norm is not finite (then count and skip)."""
        opt.zero_grad(set_to_none=True)
        if not torch.isfinite(loss):
            self.skipped_steps += 1
            return False
        self.manual_backward(loss)
        params = [p for p in module.parameters() if p.grad is not None]
        max_norm = self.hparams.grad_clip_norm or math.inf
        norm = torch.nn.utils.clip_grad_norm_(params, max_norm) if params else torch.zeros(())
        if not torch.isfinite(norm):
            opt.zero_grad(set_to_none=True)
            self.skipped_steps += 1
            return False
        opt.step()
        return True

    @torch.no_grad()
    def _update_ema(self) -> None:
        if self.generator_ema is None:
            return
        decay = self.hparams.ema_decay
        for p_ema, p in zip(self.generator_ema.parameters(), self.generator.parameters(), strict=True):
            p_ema.lerp_(p.detach(), 1.0 - decay)
        for b_ema, b in zip(self.generator_ema.buffers(), self.generator.buffers(), strict=True):
            b_ema.copy_(b)

    # ---------------------------------------------------------------- validation
    def validation_step(self, batch: Any, batch_idx: int) -> None:
        geo, _ = split_batch(batch)
        if geo is None:
            return
        x, y, mask, region = geo["input"], geo["displacement"].float(), geo.get("mask"), geo.get("region")
        out = self.inference_generator(region, x)
        pred = out.refined.float()
        scale, batch_size = self.hparams.disp_scale_mm, x.shape[0]
        texel_mm = self._texel_mm(geo)  # per patch: validation scores what evaluation scores
        self.log("val/loss_geo", geometry_loss(out.coarse.float(), pred, y, mask), batch_size=batch_size)
        if mask is None or mask.sum() > 0:
            pred_mm, gt_mm = pred * scale, y * scale
            metrics = {
                "val/disp_mae_mm": displacement_mae_mm(pred_mm, gt_mm, mask),
                "val/normal_deg": displacement_normal_deg(pred_mm, gt_mm, texel_mm, mask),
                # the proxy alone (zero detail), on the same patches: the line training has to get under
                "val/normal_deg_zero": displacement_normal_deg(torch.zeros_like(gt_mm), gt_mm, texel_mm, mask),
            }
            # the same on wrinkle texels only (most of the face is pore-scale relief no photo resolves)
            wrinkles = wrinkle_relief_mask(gt_mm, texel_mm) & (mask > 0.5 if mask is not None else True)
            if wrinkles.any():
                n = int(wrinkles.sum())
                metrics["val/normal_deg_wrinkles"] = displacement_normal_deg(pred_mm, gt_mm, texel_mm, wrinkles)
                metrics["val/normal_deg_wrinkles_zero"] = displacement_normal_deg(
                    torch.zeros_like(gt_mm), gt_mm, texel_mm, wrinkles)
                self.log_dict({k: metrics.pop(k) for k in list(metrics) if "wrinkles" in k}, batch_size=n,
                              sync_dist=True)
            self.log_dict(metrics, batch_size=batch_size, prog_bar=True, sync_dist=True)
            self._update_detail_agreement(pred_mm, gt_mm, self._texel_mm(geo), mask, wrinkles)
        if batch_idx == 0 and self.hparams.panel_rows > 0 and not self.trainer.sanity_checking:
            normals = normals_from_displacement(pred * scale, texel_mm)
            self._log_panel(make_panel(x, pred, y, normals, self.hparams.panel_rows))

    def _update_detail_agreement(self, pred_mm: torch.Tensor, gt_mm: torch.Tensor,
                                 texel_mm: torch.Tensor | float | tuple[float, float],
                                 mask: torch.Tensor | None, wrinkles: torch.Tensor) -> None:
        """Band-passed detail normals (``fds.metrics.UV_DETAIL_BAND_TEXELS``) of prediction and GT into the epoch's
        agreement accumulators (all valid texels, wrinkle texels)."""
        low, high = UV_DETAIL_BAND_TEXELS
        valid = torch.ones_like(gt_mm) if mask is None else (mask > 0.5).to(gt_mm.dtype)
        p = detail_band(detail_normals_xy(pred_mm, texel_mm), high, low, valid)  # [B, 2, H, W]
        t = detail_band(detail_normals_xy(gt_mm, texel_mm), high, low, valid)
        self.val_detail[""].update(p, t, valid)
        self.val_detail["_wrinkles"].update(p, t, wrinkles.to(gt_mm.dtype) * valid)

    def on_validation_epoch_start(self) -> None:
        for acc in self.val_detail.values():
            acc.reset()

    def on_validation_epoch_end(self) -> None:
        """``val/detail_r`` and ``val/amplitude_ratio`` (RMS prediction / GT) of the band-passed detail normals,
        pooled over the epoch's validation texels (and ``…_wrinkles`` over its wrinkle texels)."""
        for suffix, acc in self.val_detail.items():
            sums = acc.sums.to(self.device)
            if self.trainer.world_size > 1:
                sums = self.trainer.strategy.reduce(sums, reduce_op="sum")
            acc.sums = sums.cpu()
            for k, v in acc.compute().items():
                if math.isfinite(v):
                    self.log(f"val/{k}{suffix}", v, prog_bar=not suffix)

    def _log_panel(self, panel: Any) -> None:
        """Send the panel to every logger that takes images (W&B ``log_image``, TensorBoard ``add_image``)."""
        for logger in self.loggers:
            if hasattr(logger, "log_image"):
                logger.log_image(key="val/panel", images=[panel], step=self.global_step)
            else:
                experiment: Any = getattr(logger, "experiment", None)
                if hasattr(experiment, "add_image"):
                    experiment.add_image("val/panel", panel, self.global_step, dataformats="HWC")


def _bn_snapshot(*modules: nn.Module) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Copies of every BatchNorm running statistic (small: one value per channel)."""
    return [
        (buf, buf.detach().clone())
        for module in modules
        for m in module.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm)
        for buf in m.buffers()
    ]


def _bn_restore(snapshot: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
    with torch.no_grad():
        for buf, saved in snapshot:
            buf.copy_(saved)


class _batch_stats:
    """Context: BatchNorm layers normalise with the current batch's statistics, running stats untouched."""

    def __init__(self, module: nn.Module) -> None:
        self.bns = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]

    def __enter__(self) -> None:
        self.saved = [(m.training, m.momentum) for m in self.bns]
        for m in self.bns:
            m.train()
            m.momentum = 0.0  # running = (1 - 0) * running + 0 * batch: unchanged

    def __exit__(self, *exc: object) -> None:
        for m, (training, momentum) in zip(self.bns, self.saved, strict=True):
            m.train(training)
            m.momentum = momentum
