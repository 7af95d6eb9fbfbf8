"""SH shading: basis orthonormality, analytic irradiance (flat normals and a rendered sphere), estimation."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from fds.render import (
    blinn_phong_specular,
    estimate_sh,
    estimate_sh_and_albedo,
    interpolate,
    rasterize,
    sh_basis,
    sh_irradiance,
    shade_lambert,
    uv_sphere,
    vertex_normals,
)
from fds.render.shading import radiance_sh_from_function

# Environment radiance L(ω) = A + B·ω_z + C·(3ω_z² − 1) + D·ω_x ω_y (bands 0–2 only, so order-2 SH is exact).
# Irradiance (Ramamoorthi & Hanrahan): E(n) = π·A + (2π/3)·B·n_z + (π/4)·(C·(3n_z² − 1) + D·n_x n_y).
A, B, C, D = 0.8, 0.3, 0.15, 0.4


def _radiance(d: torch.Tensor) -> torch.Tensor:
    x, y, z = d.unbind(-1)
    return (A + B * z + C * (3 * z * z - 1) + D * x * y).unsqueeze(-1)


def _analytic_shading(n: torch.Tensor) -> torch.Tensor:  # E/π for normals [..., 3, ...] on dim 1
    x, y, z = n[:, 0], n[:, 1], n[:, 2]
    return A + (2 / 3) * B * z + 0.25 * (C * (3 * z * z - 1) + D * x * y)


def _random_normals(b: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(b, 3, h, w, generator=g, dtype=torch.float64), dim=1)


def test_basis_is_orthonormal_on_the_sphere() -> None:
    n_t, n_p = 96, 192
    th = (torch.arange(n_t, dtype=torch.float64) + 0.5) * math.pi / n_t
    ph = (torch.arange(n_p, dtype=torch.float64) + 0.5) * 2 * math.pi / n_p
    tt, pp = torch.meshgrid(th, ph, indexing="ij")
    n = torch.stack([tt.sin() * pp.cos(), tt.sin() * pp.sin(), tt.cos()])[None]  # [1, 3, n_t, n_p]
    y = sh_basis(n)[0].reshape(9, -1)
    dw = (tt.sin() * (math.pi / n_t) * (2 * math.pi / n_p)).reshape(-1)
    gram = (y * dw) @ y.T
    assert torch.allclose(gram, torch.eye(9, dtype=torch.float64), atol=5e-4)


def test_known_environment_gives_analytic_irradiance() -> None:
    sh = radiance_sh_from_function(_radiance, 192, 384)  # [1, 9]
    n = _random_normals(2, 8, 8)
    shading = sh_irradiance(n, sh)  # [2, 1, 8, 8]
    assert torch.allclose(shading[:, 0], _analytic_shading(n), atol=5e-4)
    # White environment of radiance 1 gives shading 1 everywhere.
    white = torch.zeros(1, 9, dtype=torch.float64)
    white[0, 0] = 2 * math.sqrt(math.pi)
    assert torch.allclose(sh_irradiance(n, white), torch.ones(2, 1, 8, 8, dtype=torch.float64))


def test_rendered_sphere_matches_analytic_irradiance() -> None:
    v, t, _ = uv_sphere(64, 128, dtype=torch.float64)
    r = 0.8
    pos = torch.cat([v * r, torch.ones(len(v), 1, dtype=torch.float64)], 1)
    pos[:, 1] = -pos[:, 1]  # image y down: object +y (up) goes to the top rows
    pos[:, 2] = -0.5 * v[:, 2]  # nearer (object +z, towards the viewer) = smaller z/w
    res = 96
    rast = rasterize(pos[None], t, (res, res), backend="torch")
    normals = F.normalize(interpolate(vertex_normals(v, t), rast, t), dim=-1).permute(0, 3, 1, 2)
    mask = rast[..., 3:4].permute(0, 3, 1, 2) > 0
    sh = radiance_sh_from_function(_radiance, 128, 256)
    img = shade_lambert(torch.full((1, 1, res, res), 0.5, dtype=torch.float64), normals, sh)
    # Analytic normals of the sphere from the pixel position (orthographic view along −z, y flipped).
    rows, cols = torch.meshgrid(torch.arange(res), torch.arange(res), indexing="ij")
    x = ((2 * cols + 1) / res - 1).double() / r
    y = -((2 * rows + 1) / res - 1).double() / r
    z = (1 - x * x - y * y).clamp_min(0).sqrt()
    n_true = torch.stack([x, y, z])[None]
    inner = mask[0, 0] & (x * x + y * y < 0.9)
    expected = 0.5 * _analytic_shading(n_true)[0]
    err = (img[0, 0] - expected)[inner].abs()
    assert inner.sum() > 3000
    assert float(err.max()) < 5e-3  # faceting of the 16k-triangle sphere; a wrong sign or band is ≫ 0.05


def test_estimate_sh_recovers_known_coefficients() -> None:
    g = torch.Generator().manual_seed(1)
    sh_true = torch.randn(2, 3, 9, generator=g, dtype=torch.float64) * 0.5
    sh_true[..., 0] += 3.0
    n = _random_normals(2, 24, 24, seed=2)
    albedo = 0.3 + 0.6 * torch.rand(2, 3, 24, 24, generator=g, dtype=torch.float64)
    img = shade_lambert(albedo, n, sh_true)
    mask = torch.rand(2, 1, 24, 24, generator=g) > 0.3
    junk = torch.where(mask, img, torch.full_like(img, 100.0))  # masked-out pixels must not matter
    est = estimate_sh(junk, n, mask, albedo)
    assert torch.allclose(est, sh_true, atol=1e-5)
    # Without albedo the fit explains the shading itself.
    est1 = estimate_sh(sh_irradiance(n, sh_true), n, torch.ones(2, 1, 24, 24))
    assert torch.allclose(est1, sh_true, atol=1e-5)


def test_estimate_sh_and_albedo_explains_the_image() -> None:
    g = torch.Generator().manual_seed(3)
    n = F.normalize(
        torch.randn(1, 3, 48, 48, generator=g, dtype=torch.float64) + torch.tensor([0, 0, 2.0])[:, None, None].double(),
        dim=1,
    )
    sh_true = torch.zeros(1, 3, 9, dtype=torch.float64)
    sh_true[..., 0], sh_true[..., 2], sh_true[..., 3] = 3.0, 0.8, -0.5
    yy = torch.linspace(0, 1, 48, dtype=torch.float64)
    albedo = (0.5 + 0.2 * yy[None, None, :, None]).expand(1, 3, 48, 48)  # smooth albedo
    img = shade_lambert(albedo, n, sh_true)
    sh, alb = estimate_sh_and_albedo(img, n, torch.ones(1, 1, 48, 48), iterations=3, sigma_px=6.0)
    recon = shade_lambert(alb, n, sh)
    rel = float((recon - img).abs().mean() / img.abs().mean())
    assert rel < 0.02


def test_shading_gradcheck() -> None:
    n = _random_normals(1, 3, 4).requires_grad_(True)
    sh = torch.randn(1, 2, 9, dtype=torch.float64, requires_grad=True)
    albedo = torch.rand(1, 2, 3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, nn, s: shade_lambert(a, nn, s), (albedo, n, sh))
    light = torch.tensor([[0.3, 0.2, 1.0]], dtype=torch.float64, requires_grad=True)
    view = torch.tensor([[0.0, 0.0, 1.0]], dtype=torch.float64)
    nz = F.normalize(
        torch.rand(1, 3, 3, 4, dtype=torch.float64) + torch.tensor([0, 0, 2.0]).double()[:, None, None], dim=1
    )
    assert torch.autograd.gradcheck(lambda l_: blinn_phong_specular(nz, l_, view, 16.0, 0.5), (light,))


def test_blinn_phong_peak_at_half_vector() -> None:
    n = torch.tensor([0.0, 0.0, 1.0]).view(1, 3, 1, 1)
    spec = blinn_phong_specular(n, torch.tensor([[0.0, 0.0, 1.0]]), torch.tensor([[0.0, 0.0, 1.0]]), 32.0, 0.7)
    assert float(spec) == pytest.approx(0.7)
    off = blinn_phong_specular(n, torch.tensor([[1.0, 0.0, 0.2]]), torch.tensor([[0.0, 0.0, 1.0]]), 32.0, 0.7)
    assert float(off) < 0.1
    behind = blinn_phong_specular(n, torch.tensor([[0.0, 0.0, -1.0]]), torch.tensor([[0.0, 0.0, 1.0]]))
    assert float(behind) == 0.0


def test_shading_bad_input() -> None:
    with pytest.raises(ValueError, match="normals"):
        sh_basis(torch.zeros(1, 2, 4, 4))
    with pytest.raises(ValueError, match="sh"):
        sh_irradiance(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4))
