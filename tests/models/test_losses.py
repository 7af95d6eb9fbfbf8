"""GAN, geometry and appearance losses: values, masking, and gradients into the generator."""

from __future__ import annotations

import math

import pytest
import torch
from hydra.utils import instantiate

from fds.metrics import amplitude_ratio, detail_band, detail_normals_xy, pearson_r
from fds.models.losses import (
    appearance_loss,
    concordance_loss,
    detail_concordance_loss,
    detail_nmse_loss,
    gan_loss_d,
    gan_loss_g,
    geometry_loss,
    masked_l1,
    masked_rms,
    normal_loss,
    reconstruct_texture,
    smooth_target,
    smooth_target_varying,
)

from .conftest import PATCH, compose_model, cylinder_proxy, furrows, studio_sh


def test_gan_losses_at_known_points():
    ones, zeros = torch.ones(2, 1, 5, 5), torch.zeros(2, 1, 5, 5)
    assert gan_loss_d(ones, zeros, "lsgan").item() == 0.0  # perfect D
    assert gan_loss_d(zeros, ones, "lsgan").item() == pytest.approx(1.0)  # ½(1 + 1)
    assert gan_loss_g(ones, "lsgan").item() == 0.0 and gan_loss_g(zeros, "lsgan").item() == pytest.approx(1.0)
    assert gan_loss_d(zeros, zeros, "vanilla").item() == pytest.approx(math.log(2))
    assert gan_loss_g(zeros, "vanilla").item() == pytest.approx(math.log(2))
    assert gan_loss_d(ones, -ones, "hinge").item() == 0.0
    assert gan_loss_d(zeros, zeros, "hinge").item() == pytest.approx(2.0)
    assert gan_loss_g(3 * ones, "hinge").item() == pytest.approx(-3.0)
    with pytest.raises(ValueError, match="gan mode"):
        gan_loss_g(ones, "wgan")


def test_masked_l1_averages_valid_texels_only():
    pred = torch.zeros(1, 1, 4, 4)
    target = torch.zeros(1, 1, 4, 4)
    target[..., :2] = 2.0
    target[..., 2:] = float("nan")  # invalid texels may hold garbage
    mask = torch.zeros(1, 1, 4, 4)
    mask[..., :2] = 1.0
    assert masked_l1(pred, target, mask).item() == pytest.approx(2.0)
    pred.requires_grad_(True)
    empty = masked_l1(pred, target, torch.zeros_like(mask))
    (grad,) = torch.autograd.grad(empty, pred)
    assert empty.item() == 0.0 and torch.count_nonzero(grad) == 0


def test_geometry_loss_supervises_coarse_and_refined():
    y = torch.rand(2, 1, 8, 8)
    assert geometry_loss(y, y, y).item() == 0.0
    assert geometry_loss(y + 0.5, y, y).item() == pytest.approx(0.5)
    assert geometry_loss(y + 0.5, y - 0.25, y).item() == pytest.approx(0.75)


def test_rms_geometry_loss_at_known_points_and_only_on_valid_texels():
    y = torch.zeros(1, 1, 4, 4)
    pred = torch.zeros(1, 1, 4, 4)
    pred[..., :1] = 2.0  # a quarter of the texels off by 2: L1 0.5, RMS sqrt(4 / 4) = 1
    assert geometry_loss(pred, y, y).item() == pytest.approx(0.5)
    assert geometry_loss(pred, y, y, norm="rms").item() == pytest.approx(1.0)
    assert geometry_loss(pred, pred, y, norm="rms").item() == pytest.approx(2.0)  # coarse + refined
    mask = torch.zeros_like(y)
    mask[..., 2:] = 1.0
    garbage = y.clone()
    garbage[..., :2] = float("nan")  # invalid texels may hold garbage
    assert masked_rms(pred, garbage, mask).item() == pytest.approx(0.0, abs=1e-5)
    with pytest.raises(ValueError, match="norm must be one of"):
        geometry_loss(pred, y, y, norm="l2")


def _fit_constant(loss_fn, target: torch.Tensor) -> float:
    """The constant c minimising ``loss_fn(c, target)`` by gradient descent from 0.1."""
    c = torch.full((1, 1, 1, 1), 0.1, requires_grad=True)
    opt = torch.optim.Adam([c], lr=0.01)
    for _ in range(800):
        opt.zero_grad()
        loss_fn(c.expand_as(target), target).backward()
        opt.step()
    return c.item()


def test_rms_keeps_an_unsure_groove_that_l1_drops():
    # a texel that holds a groove (depth 1) on 30 % of the heads the same input stands for, flat on the rest: the
    # L1's optimum is the median, 0, which draws no groove; the RMS's is the mean, 0.3, which a correlation credits
    # (Adam's last steps move c by ≤ lr = 0.01: tolerance 0.03)
    target = (torch.arange(100.0) < 30).float().reshape(1, 1, 10, 10)
    assert _fit_constant(masked_l1, target) == pytest.approx(0.0, abs=0.03)
    assert _fit_constant(masked_rms, target) == pytest.approx(0.3, abs=0.03)


def test_normal_loss_measures_the_slope_difference():
    texel = 0.2  # mm per texel
    cols = torch.arange(16.0)[None, None, None, :].expand(1, 1, 16, 16)
    flat = torch.zeros(1, 1, 16, 16)
    assert normal_loss(flat, flat, texel).item() == 0.0
    # a ramp of slope s (mm per mm) has normal (-s, 0, 1)/sqrt(1+s²); vs flat (0, 0, 1) the L1 distance is
    # s/sqrt(1+s²) + 1 - 1/sqrt(1+s²), away from the replicated border where Sobel sees a smaller slope
    s = 0.5
    ramp = cols * texel * s
    inner = torch.zeros_like(flat)
    inner[..., 2:-2, 2:-2] = 1
    expect = (s + math.sqrt(1 + s * s) - 1) / math.sqrt(1 + s * s)
    assert normal_loss(ramp, flat, texel, inner).item() == pytest.approx(expect, rel=1e-4)
    # a constant offset changes no normal; an empty mask gives exactly 0 with zero gradient
    assert normal_loss(ramp + 3.0, ramp, texel).item() == pytest.approx(0.0, abs=1e-6)
    pred = ramp.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(normal_loss(pred, flat, texel), pred)
    assert grad.abs().sum() > 0
    empty = normal_loss(pred, flat, texel, torch.zeros_like(flat))
    (grad,) = torch.autograd.grad(empty, pred)
    assert empty.item() == 0.0 and torch.count_nonzero(grad) == 0


def _rendered_scene(size: int = 64, batch: int = 2):
    """A cylinder proxy with true furrows (mm) rendered into an input texture under studio light."""
    pos, normal = cylinder_proxy(batch, size)
    true_mm = 0.4 * furrows(batch, size, torch.Generator().manual_seed(3))[:, None] / 0.5  # 0.4 mm deep
    albedo = torch.tensor([0.8, 0.6, 0.5])[None, :, None, None].expand(batch, 3, size, size).clone()
    sh = studio_sh(batch)
    texture = reconstruct_texture(true_mm, pos, normal, albedo, sh)
    return true_mm, pos, normal, albedo, sh, texture


def test_appearance_loss_prefers_the_true_displacement():
    true_mm, pos, normal, albedo, sh, texture = _rendered_scene()
    vis = torch.ones_like(true_mm)
    vis[..., :, :4] = 0  # hidden strip

    def loss(d):
        return appearance_loss(d, pos, normal, albedo, sh, texture, vis)

    assert loss(true_mm).item() < 1e-6
    flat, half = loss(torch.zeros_like(true_mm)).item(), loss(0.5 * true_mm).item()
    assert flat > half > 1e-4
    # one gradient step from a flat map moves towards the true furrows
    d = torch.zeros_like(true_mm, requires_grad=True)
    (grad,) = torch.autograd.grad(loss(d), d)
    assert loss(-1e2 * grad).item() < flat


def _appearance_batch(size: int) -> dict:
    true_mm, pos, normal, albedo, sh, texture = _rendered_scene(size)
    x = texture.mean(1, keepdim=True)
    x = (x - x.mean((2, 3), keepdim=True)) * 2
    return {
        "input": x,
        "texture": texture,
        "visibility": torch.ones_like(true_mm),
        "position_mm": pos,
        "normal": normal,
        "albedo": albedo,
        "sh": sh,
    }


@pytest.mark.parametrize("empty", [False, True])
def test_appearance_loss_gradient_into_generator(empty):
    torch.manual_seed(0)
    model = instantiate(compose_model("lite", [f"units.patch_size={PATCH}"]))
    batch = _appearance_batch(PATCH)
    if empty:
        batch["visibility"] = torch.zeros_like(batch["visibility"])
    out = model.generator("forehead", batch["input"])
    loss = appearance_loss(
        out.refined * model.hparams.disp_scale_mm,
        batch["position_mm"],
        batch["normal"],
        batch["albedo"],
        batch["sh"],
        batch["texture"],
        batch["visibility"],
    )
    loss.backward()
    gen = model.generator.models["shared"]
    grads = {
        name: sum(p.grad.abs().sum().item() for p in part.parameters() if p.grad is not None)
        for name, part in [("head", gen.head), ("pdrm", gen.pdrm), ("all", gen)]
    }
    if empty:
        assert loss.item() == 0.0
        assert grads == {"head": 0.0, "pdrm": 0.0, "all": 0.0}
    else:
        assert loss.item() > 0
        # (PDIM's share starts once the zero-initialised last Linear of the lite head has moved)
        assert grads["head"] > 0 and grads["pdrm"] > 0


def test_smooth_target_removes_speckle_keeps_grooves_and_mask_edges():
    g = torch.Generator().manual_seed(0)
    grooves = furrows(2, PATCH, g)[:, None]  # [2,1,H,W], depth 0.5 network units, width ~2 px
    speckle = 0.05 * torch.randn(grooves.shape, generator=g)  # texel-scale noise, as pores
    target = grooves + speckle
    assert torch.equal(smooth_target(target, 0.0), target)
    smooth = smooth_target(target, 2.0)
    # speckle variance drops ~(4·π·σ²)-fold; the grooves keep most of their depth
    assert (smooth - smooth_target(grooves, 2.0)).std() < 0.2 * speckle.std()
    assert smooth.min() < -0.25
    # normalised over the mask: a constant field stays constant up to the mask edge (no pull towards 0 outside)
    mask = torch.zeros_like(target)
    mask[..., :, : PATCH // 2] = 1
    const = torch.full_like(target, -0.3) * mask
    torch.testing.assert_close(smooth_target(const, 2.0, mask)[..., : PATCH // 2], const[..., : PATCH // 2])
    assert smooth_target(const, 2.0)[..., PATCH // 2 - 1].abs().max() < 0.2  # unmasked blur leaks zeros in


def _sine(n: int, period: float) -> torch.Tensor:
    """``[1, 1, n, n]`` unit sine along x of ``period`` texels."""
    x = torch.arange(n, dtype=torch.float64)
    return torch.sin(2 * math.pi * x / period).expand(n, n)[None, None].clone()


def test_varying_target_blur_matches_fixed_blur_at_its_levels_and_interpolates_between():
    n, period = 96, 12.0
    wave = _sine(n, period)
    core = (..., slice(30, 66), slice(30, 66))  # well inside: no border effects

    def gain(field: torch.Tensor) -> float:  # attenuation of the sine, fitted over the core
        return float((field[core] * wave[core]).sum() / (wave[core] ** 2).sum())

    # at a level (0.25 · 2^(k/2) texels) it is smooth_target exactly
    for sigma in (0.5, 2.0, 2.0 * math.sqrt(2)):
        got = smooth_target_varying(wave, torch.full_like(wave, sigma))
        torch.testing.assert_close(got[core], smooth_target(wave, sigma)[core])
    # between two levels the attenuation lies between theirs (a Gaussian's: exp(−2π²σ²/period²))
    lo, hi = 2.0, 2.0 * math.sqrt(2)
    between = gain(smooth_target_varying(wave, torch.full_like(wave, 2.4)))
    assert math.exp(-2 * (math.pi * hi / period) ** 2) < between < math.exp(-2 * (math.pi * lo / period) ** 2)
    # a quarter texel or less leaves the target as it is
    assert torch.equal(smooth_target_varying(wave, torch.full_like(wave, 0.2)), wave)


def test_varying_target_blur_follows_the_sigma_map_per_texel():
    n = 96
    wave = _sine(n, 6.0)  # a fine ridge pattern, as wrinkles a large face shows
    sigma = torch.full_like(wave, 0.5)
    sigma[..., n // 2:, :] = 4.0  # bottom half: a face whose photo pixel spans many texels
    out = smooth_target_varying(wave, sigma)
    top, bottom = (..., slice(8, 40), slice(20, 76)), (..., slice(56, 88), slice(20, 76))
    # each texel takes its own σ's blur: both are levels, so exactly smooth_target's there
    torch.testing.assert_close(out[top], smooth_target(wave, 0.5)[top])
    torch.testing.assert_close(out[bottom], smooth_target(wave, 4.0)[bottom])
    assert out[top].std() > 0.8 * wave.std()  # a Gaussian keeps exp(−2π²σ²/36) ≈ 0.87 of it at σ 0.5
    assert out[bottom].std() < 0.01 * wave.std()  # ≈ 1.6e-4 at σ 4
    # a σ wider than the patch can hold is the patch's widest blur (here 16 texels: the 96-texel patch / 6)
    torch.testing.assert_close(smooth_target_varying(wave, torch.full_like(wave, 500.0)), smooth_target(wave, 16.0))
    with pytest.raises(ValueError, match="sigma_texels"):
        smooth_target_varying(wave, sigma[..., :10])


def test_concordance_loss_at_known_points():
    y = torch.randn(2, 2, 16, 16, generator=torch.Generator().manual_seed(0))
    y = y - y.mean()  # zero mean: ρ_c of -y is then exactly -1
    assert concordance_loss(y, y).item() == pytest.approx(0.0, abs=1e-6)
    assert concordance_loss(-y, y).item() == pytest.approx(2.0, abs=1e-6)
    # a scaled copy: ρ_c = 2a / (a² + 1) (zero means), so half the amplitude costs 1 − 0.8
    assert concordance_loss(0.5 * y, y).item() == pytest.approx(0.2, abs=1e-5)
    # an offset costs too: ρ_c = 2σ² / (2σ² + c²)
    var = y.var(unbiased=False).item()
    assert concordance_loss(y + 1.0, y).item() == pytest.approx(1 - 2 * var / (2 * var + 1.0), abs=1e-5)
    assert concordance_loss(torch.zeros_like(y), y).item() == pytest.approx(1.0, abs=1e-6)
    pred = y.clone().requires_grad_(True)
    empty = concordance_loss(pred, y, torch.zeros_like(y[:, :1]))
    (grad,) = torch.autograd.grad(empty, pred)
    assert empty.item() == 0.0 and torch.count_nonzero(grad) == 0


def _fit_gain(loss_fn, estimate: torch.Tensor, target: torch.Tensor) -> float:
    """The gain a minimising ``loss_fn(a · estimate, target)``, by gradient descent from a = 0.1."""
    a = torch.tensor(0.1, requires_grad=True)
    opt = torch.optim.Adam([a], lr=0.02)
    for _ in range(600):
        opt.zero_grad()
        loss_fn(a * estimate, target).backward()
        opt.step()
    return a.item()


def test_concordance_keeps_the_amplitude_regression_shrinks():
    # The input explains only part of the GT: y = E[y|x] + independent noise, correlation ρ = 1/sqrt(1 + 1.5²).
    g = torch.Generator().manual_seed(1)
    known = torch.randn(1, 1, 128, 128, generator=g)
    target = known + 1.5 * torch.randn(1, 1, 128, 128, generator=g)
    rho = pearson_r(known, target).item()
    # L2 regression's best gain reproduces E[y|x]: RMS ratio ρ (≈ 0.55), shrunk; the concordance loss's best gain
    # matches the amplitude (RMS ratio 1) with the same pattern, so the same correlation
    # (Adam's steps are ≤ its lr 0.02 in a, moving the ratio by ≤ 0.02 · σ_known / σ_target < 0.01: tolerance 0.03)
    a_l2 = _fit_gain(lambda p, t: (p - t).square().mean(), known, target)
    a_cc = _fit_gain(concordance_loss, known, target)
    assert amplitude_ratio(a_l2 * known, target).item() == pytest.approx(rho, abs=0.03)
    assert amplitude_ratio(a_cc * known, target).item() == pytest.approx(1.0, abs=0.03)
    assert pearson_r(a_cc * known, target).item() == pytest.approx(rho, abs=1e-5)


def test_detail_concordance_ignores_offsets_and_scores_the_slopes():
    g = torch.Generator().manual_seed(2)
    y = 0.2 * furrows(2, PATCH, g)[:, None]  # mm
    assert detail_concordance_loss(y + 0.3, y, 0.2).item() == pytest.approx(0.0, abs=1e-5)
    flat = detail_concordance_loss(torch.zeros_like(y), y, 0.2).item()
    half = detail_concordance_loss(0.5 * y, y, 0.2).item()
    # slopes are linear in the height for small tilts: half the relief ≈ half the detail normals → 1 − 0.8 (the
    # normalisation 1/sqrt(1 + s²) shifts that by ~s²/8 of the loss, < 0.01 for the furrows' slopes s < 0.3)
    assert flat == pytest.approx(1.0, abs=1e-5) and half == pytest.approx(0.2, abs=0.01)


def test_detail_nmse_ignores_offsets_and_its_best_gain_is_the_correlation():
    g = torch.Generator().manual_seed(3)
    y = 0.2 * furrows(2, PATCH, g)[:, None]  # mm
    assert detail_nmse_loss(y + 0.3, y, 0.2).item() == pytest.approx(0.0, abs=1e-5)
    assert detail_nmse_loss(torch.zeros_like(y), y, 0.2).item() == pytest.approx(1.0, abs=1e-5)
    # half the relief ≈ half the detail normals (small slopes, as in the concordance test): (1 − 0.5)² = 0.25
    assert detail_nmse_loss(0.5 * y, y, 0.2).item() == pytest.approx(0.25, abs=0.01)
    # an input that explains only part of the GT: the best gain leaves the RMS ratio at the correlation ρ (the
    # conditional mean), where the concordance's best gain reaches 1 (test above); tolerance as there
    known = 0.2 * furrows(2, PATCH, g)[:, None]
    target = known + 0.2 * furrows(2, PATCH, g)[:, None]
    def band(x):
        return detail_band(detail_normals_xy(x, 0.2), 6.0, 0.0)
    rho = pearson_r(band(known), band(target)).item()
    a = _fit_gain(lambda p, t: detail_nmse_loss(p, t, 0.2), known, target)
    assert amplitude_ratio(band(a * known), band(target)).item() == pytest.approx(rho, abs=0.03)
