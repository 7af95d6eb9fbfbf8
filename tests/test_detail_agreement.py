"""Detail agreement metrics of fds.metrics (Pearson r, RMS amplitude ratio, band-pass) against analytic cases."""

from __future__ import annotations

import math

import pytest
import torch

from fds.metrics import (
    DetailAgreement,
    amplitude_ratio,
    detail_band,
    detail_normals_xy,
    masked_blur,
    pearson_r,
)


def noise(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def test_identical_scaled_and_negated_fields():
    gt = noise(2, 3, 32, 32)
    assert pearson_r(gt, gt).item() == pytest.approx(1.0, abs=1e-6)
    assert amplitude_ratio(gt, gt).item() == pytest.approx(1.0, abs=1e-6)
    # scaling changes the amplitude by exactly the scale and not the correlation
    assert pearson_r(0.2 * gt, gt).item() == pytest.approx(1.0, abs=1e-6)
    assert amplitude_ratio(0.2 * gt, gt).item() == pytest.approx(0.2, rel=1e-6)
    assert amplitude_ratio(3 * gt, gt).item() == pytest.approx(3.0, rel=1e-6)
    assert pearson_r(-gt, gt).item() == pytest.approx(-1.0, abs=1e-6)
    # zero detail: no amplitude, correlation undefined (NaN, never mistaken for a score)
    zero = torch.zeros_like(gt)
    assert amplitude_ratio(zero, gt).item() == 0.0 and math.isnan(pearson_r(zero, gt).item())


def test_mirrored_field_correlates_at_chance():
    gt = noise(1, 2, 64, 64)
    # N = 8192 independent elements: r of unrelated fields has standard deviation 1/sqrt(N) ≈ 0.011; 5σ
    r = pearson_r(gt.flip(-1), gt).item()
    assert abs(r) < 5 / math.sqrt(gt.numel())
    assert amplitude_ratio(gt.flip(-1), gt).item() == pytest.approx(1.0, abs=1e-6)  # same field, same RMS


def test_mask_selects_the_scored_elements():
    gt, pred = noise(1, 1, 16, 16), noise(1, 1, 16, 16, seed=1)
    mask = torch.zeros(1, 1, 16, 16)
    mask[..., :8] = 1
    pred_in = torch.where(mask > 0, 0.5 * gt, pred)  # agrees at half amplitude inside, garbage outside
    assert pearson_r(pred_in, gt, mask).item() == pytest.approx(1.0, abs=1e-6)
    assert amplitude_ratio(pred_in, gt, mask).item() == pytest.approx(0.5, rel=1e-6)
    assert math.isnan(pearson_r(gt, gt, torch.zeros_like(mask)).item())
    assert math.isnan(amplitude_ratio(gt, gt, torch.zeros_like(mask)).item())


def test_band_pass_gain_of_a_sinusoid():
    # a Gaussian blur of σ multiplies a sinusoid of angular frequency ω by exp(−σ²ω²/2): the band (σ_l, σ_h)
    # passes it with gain exp(−σ_l²ω²/2) − exp(−σ_h²ω²/2) (away from the borders)
    size, period = 128, 16.0
    w = 2 * math.pi / period
    cols = torch.arange(size, dtype=torch.float64)
    field = torch.sin(w * cols)[None, None, None].expand(1, 1, size, size).clone()
    band = detail_band(field, 6.0, 2.0)
    gain = math.exp(-(2.0 * w) ** 2 / 2) - math.exp(-(6.0 * w) ** 2 / 2)
    inner = (slice(None), slice(None), slice(40, -40), slice(40, -40))
    # kernels cut at ±3σ and renormalised drop 0.27 % of the Gaussian's mass: each blur's gain is off by at most
    # 2 × 0.0027, the band's (two blurs) by at most 4 × 0.0027
    torch.testing.assert_close(band[inner], gain * field[inner], atol=4 * 0.0027, rtol=0)
    # a constant (or a slow tilt's mean) is removed entirely, also inside a mask
    mask = torch.zeros(1, 1, size, size)
    mask[..., 20:100, 10:70] = 1
    const = torch.full((1, 1, size, size), 0.7, dtype=torch.float64)
    assert detail_band(const, 6.0, 0.0, mask).abs().max() < 1e-9
    with pytest.raises(ValueError, match="sigma_high"):
        detail_band(field, 2.0, 2.0)


def test_masked_blur_keeps_a_constant_up_to_the_mask_edge():
    mask = torch.zeros(1, 1, 32, 32)
    mask[..., :, :16] = 1
    const = torch.full((1, 1, 32, 32), -0.3) * mask + 5.0 * (1 - mask)  # garbage off the mask
    out = masked_blur(const, 2.0, mask)
    torch.testing.assert_close(out[..., :16], const[..., :16])
    assert out[..., 16:].abs().max() == 0


def test_accumulated_agreement_equals_the_pooled_metric():
    a, b = noise(2, 2, 16, 16), noise(2, 2, 16, 16, seed=1)
    pred = 0.6 * a + 0.3 * b
    mask = (noise(2, 1, 16, 16, seed=2) > -0.5).float()
    acc = DetailAgreement()
    acc.update(pred[:1], a[:1], mask[:1])
    acc.update(pred[1:], a[1:], mask[1:])
    got = acc.compute()
    assert got["detail_r"] == pytest.approx(pearson_r(pred, a, mask).item(), abs=1e-5)
    assert got["amplitude_ratio"] == pytest.approx(amplitude_ratio(pred, a, mask).item(), abs=1e-5)
    acc.reset()
    assert math.isnan(acc.compute()["detail_r"])


def test_detail_normals_of_a_ramp():
    # a ramp rising 0.1 mm per 0.2 mm texel along u tilts the normal by atan(0.5) against +u
    texel = 0.2
    cols = torch.arange(16.0)[None, None, None, :].expand(1, 1, 16, 16)
    xy = detail_normals_xy(cols * 0.1, texel)
    s = 0.5
    torch.testing.assert_close(xy[..., 2:-2, 2:-2], torch.tensor([-s, 0.0]).view(1, 2, 1, 1).expand(1, 2, 12, 12)
                               / math.sqrt(1 + s * s))
