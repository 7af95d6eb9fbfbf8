"""Pure metric functions shared by training validation and evaluation.

Maps are ``[B, C, H, W]``; masks ``[B, 1, H, W]`` in [0, 1] (None = every texel). Each function returns a
0-dim tensor averaged over masked texels of the whole batch (NaN when the mask is empty, so an undefined
metric is never mistaken for a perfect one).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import kornia
import torch

from fds.render.normals import TexelMM, normals_from_displacement


def _masked_mean(values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean of ``values [B, 1, H, W]`` weighted by ``mask``; NaN for an empty mask."""
    if mask is None:
        return values.mean()
    mask = mask.to(values.dtype).expand_as(values)
    total = mask.sum()
    if total <= 0:
        return values.new_tensor(float("nan"))
    return torch.where(mask > 0, values * mask, torch.zeros_like(values)).sum() / total


def displacement_mae_mm(
    pred_mm: torch.Tensor, target_mm: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean absolute displacement error in mm; ``pred_mm``/``target_mm`` ``[B, 1, H, W]`` in mm."""
    if pred_mm.shape != target_mm.shape:
        raise ValueError(f"pred_mm {tuple(pred_mm.shape)} and target_mm {tuple(target_mm.shape)} differ in shape")
    return _masked_mean((pred_mm - target_mm).abs(), mask)


def normal_angle_deg(
    pred_normals: torch.Tensor, target_normals: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean angle in degrees between unit normal maps ``[B, 3, H, W]`` (same frame)."""
    if pred_normals.shape != target_normals.shape or pred_normals.shape[1] != 3:
        raise ValueError(
            f"normal maps must both be [B, 3, H, W], got {tuple(pred_normals.shape)} and {tuple(target_normals.shape)}"
        )
    return _masked_mean(_angle_deg(pred_normals, target_normals), mask)


def _angle_deg(pred_normals: torch.Tensor, target_normals: torch.Tensor) -> torch.Tensor:
    cos = (pred_normals * target_normals).sum(1, keepdim=True).clamp(-1.0, 1.0)
    return torch.rad2deg(torch.acos(cos))  # [B, 1, H, W]


@dataclass(frozen=True)
class NormalError:
    """Per-texel comparison of the metric tangent-space normals of two displacement maps (:func:`normal_error`)."""

    pred_normals: torch.Tensor  # [B, 3, H, W] unit normals of the prediction (fds.render.normals conventions)
    target_normals: torch.Tensor  # [B, 3, H, W] unit normals of the GT

    @property
    def angle_deg(self) -> torch.Tensor:
        """``[B, 1, H, W]`` angle between the two normals, degrees: what validation and evaluation score."""
        return _angle_deg(self.pred_normals, self.target_normals)

    @property
    def l1(self) -> torch.Tensor:
        """``[B, 1, H, W]`` Σ over x, y, z of |n_pred − n_gt|: the training term (differentiable at 0, and for small
        angles proportional to the angle)."""
        return (self.pred_normals - self.target_normals).abs().sum(1, keepdim=True)


def normal_error(pred_mm: torch.Tensor, target_mm: torch.Tensor, texel_mm: TexelMM) -> NormalError:
    """The normal error of fds, used by the training loss (:func:`fds.models.losses.normal_loss`), validation
    (``val/normal_deg``, checkpoint selection) and evaluation (:func:`fds.evaluation.map_errors`) alike.

    ``pred_mm``/``target_mm`` ``[B, 1, H, W]`` displacements in mm; ``texel_mm`` the surface size of one texel
    (du along u, dv along v) in mm: a pair, ``[B, 2]`` per map or ``[B, 2, H, W]`` per texel
    (:func:`fds.render.normals.texel_sizes`; SFM texels at 1024² are about 0.28 × 0.19 mm, so one number would
    tilt every slope along one axis). Normals: :func:`fds.render.normals.normals_from_displacement`.
    """
    if pred_mm.shape != target_mm.shape:
        raise ValueError(f"pred_mm {tuple(pred_mm.shape)} and target_mm {tuple(target_mm.shape)} differ in shape")
    return NormalError(normals_from_displacement(pred_mm.float(), texel_mm),
                       normals_from_displacement(target_mm.float(), texel_mm))


def displacement_normal_deg(
    pred_mm: torch.Tensor, target_mm: torch.Tensor, texel_mm: TexelMM, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean normal-angle error (degrees) between two displacement maps in mm over masked texels
    (:func:`normal_error`)."""
    return _masked_mean(normal_error(pred_mm, target_mm, texel_mm).angle_deg, mask)


def wrinkle_relief_mask(
    target_mm: torch.Tensor, texel_mm: TexelMM, sigma_texels: float = 2.0, min_deg: float = 1.0
) -> torch.Tensor:
    """Texels on wrinkle relief, bool ``[B, 1, H, W]``, of GT displacements ``[B, 1, H, W]`` in mm: where the GT,
    blurred by ``sigma_texels`` (removing pore-scale speckle no method recovers from a photo), tilts the normal by
    more than ``min_deg`` degrees. About 8 % of the procedural faces, and where zero detail errs most."""
    k = int(2 * round(3 * sigma_texels) + 1)
    smooth = kornia.filters.gaussian_blur2d(target_mm.float(), (k, k), (sigma_texels, sigma_texels),
                                            border_type="reflect")
    tilt = torch.rad2deg(torch.acos(normals_from_displacement(smooth, texel_mm)[:, 2:3].clamp(-1, 1)))
    return tilt > min_deg


def encode_normals(normals: torch.Tensor) -> torch.Tensor:
    """Unit normals ``[B, 3, H, W]`` → the normal-map image (n + 1) / 2 in [0, 1] (fds.export's encoding), in
    the input's floating dtype (float64 stays float64: SSIM's variances lose ~1e-4 to cancellation in float32)."""
    if normals.dim() != 4 or normals.shape[1] != 3:
        raise ValueError(f"normals must be [B, 3, H, W], got {tuple(normals.shape)}")
    n = normals if normals.is_floating_point() else normals.float()
    return ((n + 1.0) / 2.0).clamp(0.0, 1.0)


def normal_ssim_map(pred_normals: torch.Tensor, target_normals: torch.Tensor, window_size: int = 11) -> torch.Tensor:
    """Per-texel SSIM ``[B, 1, H, W]`` of two unit normal maps ``[B, 3, H, W]``, compared as normal-map images
    (n + 1)/2 with peak 1 (``kornia.metrics.ssim``: Gaussian window σ = 1.5, 'same' padding), channel mean."""
    if pred_normals.shape != target_normals.shape:
        raise ValueError(f"normal maps differ in shape: {tuple(pred_normals.shape)} vs {tuple(target_normals.shape)}")
    ssim = kornia.metrics.ssim(encode_normals(pred_normals), encode_normals(target_normals), window_size, max_val=1.0)
    return ssim.mean(1, keepdim=True)


def normal_ssim(
    pred_normals: torch.Tensor, target_normals: torch.Tensor, mask: torch.Tensor | None = None, window_size: int = 11
) -> torch.Tensor:
    """Mean SSIM (1 = identical) of two unit normal maps ``[B, 3, H, W]`` over masked texels (see normal_ssim_map)."""
    return _masked_mean(normal_ssim_map(pred_normals, target_normals, window_size), mask)


def normal_psnr_db(
    pred_normals: torch.Tensor, target_normals: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """PSNR in dB of two unit normal maps ``[B, 3, H, W]`` as normal-map images (n + 1)/2 (peak 1), one MSE
    pooled over the masked texels and the 3 channels of the batch (``kornia.metrics.psnr``); +inf when identical."""
    if pred_normals.shape != target_normals.shape:
        raise ValueError(f"normal maps differ in shape: {tuple(pred_normals.shape)} vs {tuple(target_normals.shape)}")
    p, t = encode_normals(pred_normals), encode_normals(target_normals)
    if mask is not None:
        keep = (mask > 0).expand(-1, 3, -1, -1)
        if not bool(keep.any()):
            return p.new_tensor(float("nan"))
        p, t = p[keep], t[keep]
    return kornia.metrics.psnr(p, t, 1.0)


# ------------------------------------------------------------------------------------------ detail agreement
# Shrinkage and placement of detail, scored apart: the Pearson r of a predicted detail field against the GT's says
# whether the relief is in the right places (scale-free), the RMS ratio says how much of the GT's amplitude the
# prediction carries (1 = all of it; an L1-trained regressor that is unsure shrinks towards 0).

#: The band of detail normals the UV validation scores, σ in texels of a 1024² map (0.2–0.3 mm each): a low-pass of
#: σ = 2 removes pore-scale speckle no photo resolves (as :func:`wrinkle_relief_mask`), a high-pass of σ = 6
#: (≈ 1.5 mm) keeps the wrinkles and drops slow tilts, as the photo benchmark's 3 px high-pass does at 0.4–0.5 mm/px.
UV_DETAIL_BAND_TEXELS = (2.0, 6.0)


def _gaussian(x: torch.Tensor, sigma: float) -> torch.Tensor:
    k = int(2 * round(3 * sigma) + 1)
    return kornia.filters.gaussian_blur2d(x, (k, k), (sigma, sigma), border_type="reflect")


def masked_blur(field: torch.Tensor, sigma: float, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Gaussian blur (σ in pixels/texels) of ``field [B, C, H, W]`` normalised over ``mask [B, 1, H, W]``, so
    values off the mask neither leak in nor pull the edge towards 0; 0 off the mask. ``sigma`` ≤ 0: no blur."""
    if field.dim() != 4:
        raise ValueError(f"field must be [B, C, H, W], got {tuple(field.shape)}")
    if mask is None:
        return _gaussian(field, sigma) if sigma > 0 else field
    m = (mask > 0).to(field.dtype)
    x = torch.where(m > 0, field, torch.zeros_like(field))
    if sigma <= 0:
        return x
    return torch.where(m > 0, _gaussian(x, sigma) / _gaussian(m, sigma).clamp_min(1e-6), torch.zeros_like(x))


def detail_band(field: torch.Tensor, sigma_high: float, sigma_low: float = 0.0,
                mask: torch.Tensor | None = None) -> torch.Tensor:
    """Band-pass of ``field [B, C, H, W]``: its blur by ``sigma_low`` minus its blur by ``sigma_high`` (σ in
    pixels/texels, ``sigma_low`` 0 = no low-pass: a plain high-pass), each normalised over ``mask``; 0 off it."""
    if sigma_high <= sigma_low:
        raise ValueError(f"sigma_high ({sigma_high}) must exceed sigma_low ({sigma_low})")
    return masked_blur(field, sigma_low, mask) - masked_blur(field, sigma_high, mask)


def _masked_elements(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")
    if mask is None:
        return pred.reshape(-1).double(), target.reshape(-1).double()
    keep = (mask > 0).expand_as(pred)
    return pred[keep].double(), target[keep].double()


def pearson_r(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Pearson correlation of two fields ``[B, C, H, W]`` over the masked elements of every channel and sample,
    pooled (one mean); NaN when the mask is empty or either field is constant there. Computed in float64."""
    p, t = _masked_elements(pred, target, mask)
    if p.numel() < 2:
        return pred.new_tensor(float("nan"))
    p, t = p - p.mean(), t - t.mean()
    den = (p.square().sum() * t.square().sum()).sqrt()
    return (p * t).sum().div(den).float() if den > 0 else pred.new_tensor(float("nan"))


def amplitude_ratio(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """RMS(pred) / RMS(target) over the masked elements of two fields ``[B, C, H, W]`` (of band-passed detail:
    1 = the prediction carries the GT's amplitude); NaN when the mask is empty or the target is 0 there."""
    p, t = _masked_elements(pred, target, mask)
    den = t.square().sum()
    return (p.square().sum() / den).sqrt().float() if den > 0 else pred.new_tensor(float("nan"))


def detail_normals_xy(displacement_mm: torch.Tensor, texel_mm: TexelMM) -> torch.Tensor:
    """The detail a displacement ``[B, 1, H, W]`` (mm) adds to the normal, ``[B, 2, H, W]``: the tangent-space
    normal's (x, y) (:func:`fds.render.normals.normals_from_displacement`), i.e. detailed − flat normal up to the
    second-order change of z."""
    return normals_from_displacement(displacement_mm.float(), texel_mm)[:, :2]


class DetailAgreement:
    """Accumulates :func:`pearson_r` and :func:`amplitude_ratio` over batches (sums in float64), so a whole
    validation epoch is scored as one pooled set, not as a mean of per-batch ratios.

    >>> acc = DetailAgreement()
    >>> acc.update(2 * torch.ones(1, 1, 2, 2), torch.ones(1, 1, 2, 2)); acc.compute()["amplitude_ratio"]
    2.0
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.sums = torch.zeros(6, dtype=torch.float64)  # n, Σp, Σt, Σp², Σt², Σpt

    def update(self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> None:
        p, t = _masked_elements(pred.detach(), target.detach(), None if mask is None else mask.detach())
        self.sums += torch.stack([torch.tensor(float(p.numel()), dtype=torch.float64), p.sum(), t.sum(),
                                  p.square().sum(), t.square().sum(), (p * t).sum()]).cpu()

    def compute(self) -> dict[str, float]:
        """``{"detail_r", "amplitude_ratio"}`` over everything seen since the last reset (NaN when undefined)."""
        n, sp, st, spp, stt, spt = self.sums.tolist()
        if n < 2:
            return {"detail_r": math.nan, "amplitude_ratio": math.nan}
        cov, vp, vt = spt - sp * st / n, spp - sp * sp / n, stt - st * st / n
        r = cov / math.sqrt(vp * vt) if vp > 0 and vt > 0 else math.nan
        return {"detail_r": r, "amplitude_ratio": math.sqrt(spp / stt) if stt > 0 else math.nan}
