"""Pure validation metrics of fds.metrics against analytic values."""

from __future__ import annotations

import math

import pytest
import torch

from fds.metrics import displacement_mae_mm, displacement_normal_deg, normal_angle_deg


def test_displacement_mae_mm_respects_mask():
    pred = torch.zeros(2, 1, 8, 8)
    target = torch.full((2, 1, 8, 8), 0.3)
    mask = torch.zeros_like(pred)
    mask[0] = 1
    target[1] = 100.0  # masked out
    assert displacement_mae_mm(pred, target, mask).item() == pytest.approx(0.3)
    assert math.isnan(displacement_mae_mm(pred, target, torch.zeros_like(mask)).item())


def test_normal_angle_of_known_rotation():
    flat = torch.zeros(1, 3, 4, 4)
    flat[:, 2] = 1
    tilted = torch.zeros(1, 3, 4, 4)
    tilted[:, 0], tilted[:, 2] = math.sin(math.radians(30)), math.cos(math.radians(30))
    assert normal_angle_deg(tilted, flat).item() == pytest.approx(30.0, abs=1e-3)
    assert normal_angle_deg(flat, flat).item() == pytest.approx(0.0, abs=1e-3)


def test_displacement_normal_error_of_a_ramp():
    texel_mm, slope = 0.1, 0.25  # mm of height per mm along u
    cols = torch.arange(32, dtype=torch.float32)[None, None, None].expand(1, 1, 32, 32)
    ramp_mm = slope * cols * texel_mm
    mask = torch.zeros(1, 1, 32, 32)
    mask[..., 4:-4, 4:-4] = 1  # away from the replicated border
    err = displacement_normal_deg(ramp_mm, torch.zeros_like(ramp_mm), texel_mm, mask).item()
    assert err == pytest.approx(math.degrees(math.atan(slope)), abs=0.01)
    # the same ramp at twice the texel size is half as steep
    err2 = displacement_normal_deg(ramp_mm, torch.zeros_like(ramp_mm), 2 * texel_mm, mask).item()
    assert err2 == pytest.approx(math.degrees(math.atan(slope / 2)), abs=0.01)


def test_normal_error_takes_each_maps_and_texels_own_size():
    """SFM texels are about 0.28 × 0.19 mm: one number for the texel size would tilt every slope. A ramp along u
    and one along v, both 0.05 mm of height per texel, tilt by atan(0.05 / du) and atan(0.05 / dv); a per-texel
    size map changes the angle where it changes; the loss compares the very same normals."""
    from fds.metrics import normal_error
    from fds.models.losses import normal_loss

    n, h = 32, 0.05
    cols = torch.arange(n, dtype=torch.float32)[None, None, None].expand(1, 1, n, n)
    maps = torch.cat([h * cols, h * cols.transpose(-1, -2)])  # [2, 1, n, n]: along u, along v
    flat = torch.zeros_like(maps)
    texel = torch.tensor([[0.28, 0.19], [0.28, 0.19]])  # [B, 2] (du, dv) mm
    angle = normal_error(maps, flat, texel).angle_deg[..., 4:-4, 4:-4]
    along_u, along_v = math.degrees(math.atan(h / 0.28)), math.degrees(math.atan(h / 0.19))
    torch.testing.assert_close(angle[0], torch.full_like(angle[0], along_u), atol=1e-3, rtol=0)
    torch.testing.assert_close(angle[1], torch.full_like(angle[1], along_v), atol=1e-3, rtol=0)
    per_texel = texel[:, :, None, None].expand(2, 2, n, n).clone()
    per_texel[:, 0, :, n // 2:] *= 2  # the right half of each map has texels twice as wide along u
    angle = normal_error(maps, flat, per_texel).angle_deg[0, 0]
    assert angle[4:-4, 4 : n // 2 - 2].mean().item() == pytest.approx(along_u, abs=1e-3)
    assert angle[4:-4, n // 2 + 2 : -4].mean().item() == pytest.approx(math.degrees(math.atan(h / 0.56)), abs=1e-3)
    # the loss: Σ|n − (0, 0, 1)| of a normal tilted by θ along u is sin θ + 1 − cos θ
    mask = torch.zeros(1, 1, n, n)
    mask[..., 4:-4, 4:-4] = 1
    theta = math.atan(h / 0.28)
    assert normal_loss(maps[:1], flat[:1], texel[:1], mask).item() == pytest.approx(
        math.sin(theta) + 1 - math.cos(theta), rel=1e-4)
    with pytest.raises(ValueError, match="texel_mm"):
        normal_error(maps, flat, torch.tensor([[0.28, 0.19]]))  # one pair for two maps: say which
