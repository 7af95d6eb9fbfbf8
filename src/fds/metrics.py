"""Pure metric functions shared by training validation and evaluation.

Maps are ``[B, C, H, W]``; masks ``[B, 1, H, W]`` in [0, 1] (None = every texel). Each function returns a
0-dim tensor averaged over masked texels of the whole batch (NaN when the mask is empty, so an undefined
metric is never mistaken for a perfect one).
"""

from __future__ import annotations

import math

import torch

from fds.render.normals import normals_from_displacement


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
    cos = (pred_normals * target_normals).sum(1, keepdim=True).clamp(-1.0, 1.0)
    return _masked_mean(torch.rad2deg(torch.acos(cos)), mask)


def displacement_normal_deg(
    pred_mm: torch.Tensor, target_mm: torch.Tensor, texel_mm: float, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean tangent-space normal-angle error (degrees) between two displacement maps in mm.

    Normals come from ``fds.render.normals.normals_from_displacement`` with ``texel_mm`` mm per texel.
    """
    if not math.isfinite(texel_mm) or texel_mm <= 0:
        raise ValueError(f"texel_mm must be a positive texel size in mm, got {texel_mm}")
    pred_n = normals_from_displacement(pred_mm.float(), texel_mm)
    target_n = normals_from_displacement(target_mm.float(), texel_mm)
    return normal_angle_deg(pred_n, target_n, mask)
