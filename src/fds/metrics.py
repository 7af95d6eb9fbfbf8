"""Pure metric functions shared by training validation and evaluation.

Maps are ``[B, C, H, W]``; masks ``[B, 1, H, W]`` in [0, 1] (None = every texel). Each function returns a
0-dim tensor averaged over masked texels of the whole batch (NaN when the mask is empty, so an undefined
metric is never mistaken for a perfect one).
"""

from __future__ import annotations

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
