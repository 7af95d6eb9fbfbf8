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
