"""Spherical-harmonics lighting (order 2), Lambertian and Blinn-Phong shading, SH estimation.

Conventions
-----------
* Normals are unit vectors in the frame the lighting is expressed in (usually camera or object space),
  laid out as images ``[B, 3, H, W]`` (channels x, y, z). Zero normals (background) give zero basis values
  except the constant band.
* ``sh_basis`` returns the *orthonormal real* spherical harmonics Y_lm (no band factors), in the order
  ``[Y00, Y1-1, Y10, Y11, Y2-2, Y2-1, Y20, Y21, Y22]`` =
  ``[c0, c1 y, c1 z, c1 x, c2 xy, c2 yz, c20 (3z²-1), c2 xz, c22 (x²-y²)]`` with
  ``c0 = 1/(2√π)``, ``c1 = √(3/4π)``, ``c2 = √(15/4π)``, ``c20 = √(5/16π)``, ``c22 = √(15/16π)``.
* ``sh`` coefficients ``[B, C, 9]`` are those of the **incident radiance** L(ω) = Σ L_lm Y_lm(ω) per colour
  channel (Ramamoorthi & Hanrahan 2001). The Lambertian band factors are applied inside
  ``sh_irradiance``, *divided by π*: shading(n) = E(n)/π = Σ_l (A_l/π) L_lm Y_lm(n) with
  A_0/π = 1, A_1/π = 2/3, A_2/π = 1/4. So a white environment of radiance 1 (L_00 = 2√π) gives
  shading 1, and ``shade_lambert`` returns the outgoing radiance albedo·E/π of a Lambertian surface.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

SH_C0 = 1.0 / (2.0 * math.sqrt(math.pi))
SH_C1 = math.sqrt(3.0 / (4.0 * math.pi))
SH_C2 = math.sqrt(15.0 / (4.0 * math.pi))
SH_C20 = math.sqrt(5.0 / (16.0 * math.pi))
SH_C22 = math.sqrt(15.0 / (16.0 * math.pi))
#: Lambertian band factors A_l / π for the 9 coefficients (band 0: 1, band 1: 2/3, band 2: 1/4).
SH_BAND_FACTORS = (1.0, 2.0 / 3.0, 2.0 / 3.0, 2.0 / 3.0, 0.25, 0.25, 0.25, 0.25, 0.25)


def _check_image(name: str, t: torch.Tensor, channels: int | None = None) -> None:
    if not isinstance(t, torch.Tensor) or t.dim() != 4:
        shape = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
        raise ValueError(f"{name} must be a [B, C, H, W] tensor, got {shape}")
    if channels is not None and t.shape[1] != channels:
        raise ValueError(f"{name} must have {channels} channels ([B, {channels}, H, W]), got {tuple(t.shape)}")
    if not t.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {t.dtype}")


def sh_basis(normals: torch.Tensor) -> torch.Tensor:
    """Orthonormal real SH basis of order 2 at each normal: ``[B, 3, H, W]`` → ``[B, 9, H, W]``."""
    _check_image("normals", normals, 3)
    x, y, z = normals[:, 0], normals[:, 1], normals[:, 2]
    basis = [
        torch.full_like(x, SH_C0),
        SH_C1 * y,
        SH_C1 * z,
        SH_C1 * x,
        SH_C2 * x * y,
        SH_C2 * y * z,
        SH_C20 * (3.0 * z * z - 1.0),
        SH_C2 * x * z,
        SH_C22 * (x * x - y * y),
    ]
    return torch.stack(basis, dim=1)


def _band_factors(ref: torch.Tensor) -> torch.Tensor:
    return torch.tensor(SH_BAND_FACTORS, dtype=ref.dtype, device=ref.device)


def radiance_sh_from_function(fn, n_theta: int = 64, n_phi: int = 128, dtype=torch.float64) -> torch.Tensor:
    """Project a radiance function ``fn(dirs [N,3]) -> [N, C]`` on the 9 SH by quadrature → ``[C, 9]``.

    A helper for tests and for building environments; midpoint rule in (θ, φ).
    """
    theta = (torch.arange(n_theta, dtype=dtype) + 0.5) * math.pi / n_theta
    phi = (torch.arange(n_phi, dtype=dtype) + 0.5) * 2 * math.pi / n_phi
    th, ph = torch.meshgrid(theta, phi, indexing="ij")
    dirs = torch.stack([th.sin() * ph.cos(), th.sin() * ph.sin(), th.cos()], dim=-1).reshape(-1, 3)
    weight = (th.sin() * (math.pi / n_theta) * (2 * math.pi / n_phi)).reshape(-1)  # [N] solid angle
    values = fn(dirs)  # [N, C]
    basis = sh_basis(dirs.T.reshape(1, 3, -1, 1))[0, :, :, 0]  # [9, N]
    return torch.einsum("kn,nc,n->ck", basis, values.to(dtype), weight)


def sh_irradiance(normals: torch.Tensor, sh: torch.Tensor) -> torch.Tensor:
    """Lambertian shading E(n)/π under SH radiance ``sh [B, C, 9]`` at ``normals [B, 3, H, W]``.

    Returns ``[B, C, H, W]``.

    ``sh`` may also be ``[C, 9]`` (shared by the batch).
    """
    _check_image("normals", normals, 3)
    if sh.dim() == 2:
        sh = sh.unsqueeze(0).expand(normals.shape[0], -1, -1)
    if sh.dim() != 3 or sh.shape[-1] != 9:
        raise ValueError(f"sh must be [B, C, 9] SH coefficients, got {tuple(sh.shape)}")
    basis = sh_basis(normals)  # [B, 9, H, W]
    coeffs = sh * _band_factors(sh)  # [B, C, 9]
    return torch.einsum("bck,bkhw->bchw", coeffs, basis)


def shade_lambert(albedo: torch.Tensor, normals: torch.Tensor, sh: torch.Tensor) -> torch.Tensor:
    """Outgoing radiance of a Lambertian surface: ``albedo [B, C, H, W] · sh_irradiance``."""
    _check_image("albedo", albedo)
    return albedo * sh_irradiance(normals, sh)


def blinn_phong_specular(
    normals: torch.Tensor,
    light_dir: torch.Tensor,
    view_dir: torch.Tensor,
    shininess: float | torch.Tensor = 32.0,
    strength: float | torch.Tensor = 0.2,
) -> torch.Tensor:
    """Blinn-Phong specular term ``strength · max(n·h, 0)^shininess`` (zero where n·l ≤ 0) → ``[B, 1, H, W]``.

    ``light_dir`` and ``view_dir`` point *from the surface towards* the light / the eye, in the normals'
    frame, either ``[B, 3]`` (directional light, orthographic view) or ``[B, 3, H, W]`` (per pixel).
    """
    _check_image("normals", normals, 3)

    def as_map(name: str, d: torch.Tensor) -> torch.Tensor:
        if d.dim() == 2 and d.shape[1] == 3:
            d = d[:, :, None, None]
        if d.dim() != 4 or d.shape[1] != 3:
            raise ValueError(f"{name} must be [B, 3] or [B, 3, H, W], got {tuple(d.shape)}")
        return F.normalize(d.to(normals), dim=1)

    l_dir, v_dir = as_map("light_dir", light_dir), as_map("view_dir", view_dir)
    h = F.normalize(l_dir + v_dir, dim=1)
    n_dot_h = (normals * h).sum(1, keepdim=True).clamp_min(0.0)
    lit = ((normals * l_dir).sum(1, keepdim=True) > 0).to(normals.dtype)
    return strength * n_dot_h.pow(shininess) * lit


def ggx_specular(
    normals: torch.Tensor,
    light_dir: torch.Tensor,
    view_dir: torch.Tensor,
    roughness: float | torch.Tensor = 0.4,
    f0: float = 0.028,
) -> torch.Tensor:
    """Cook-Torrance specular with the GGX distribution → ``[B, 1, H, W]`` (radiance per unit light irradiance).

    f = D·G·F / (4 (n·l)(n·v)) times n·l, with D = α² / (π ((n·h)²(α² − 1) + 1)²), α = roughness², Smith-Schlick
    G with k = α/2 and Schlick's Fresnel F = f0 + (1 − f0)(1 − v·h)⁵ (f0 = 0.028: skin, n ≈ 1.4). Directions as
    in :func:`blinn_phong_specular` (towards the light / the eye, ``[B, 3]`` or ``[B, 3, H, W]``); zero where
    n·l ≤ 0 or n·v ≤ 0.
    """
    _check_image("normals", normals, 3)

    def as_map(d: torch.Tensor) -> torch.Tensor:
        d = d[:, :, None, None] if d.dim() == 2 else d
        return F.normalize(d.to(normals), dim=1)

    l_dir, v_dir = as_map(light_dir), as_map(view_dir)
    h = F.normalize(l_dir + v_dir, dim=1)
    n_l = (normals * l_dir).sum(1, keepdim=True)
    n_v = (normals * v_dir).sum(1, keepdim=True)
    n_h = (normals * h).sum(1, keepdim=True).clamp_min(0.0)
    v_h = (v_dir * h).sum(1, keepdim=True).clamp_min(0.0)
    alpha = torch.as_tensor(roughness, dtype=normals.dtype, device=normals.device) ** 2
    d = alpha**2 / (math.pi * (n_h**2 * (alpha**2 - 1) + 1) ** 2)
    k = alpha / 2
    nl, nv = n_l.clamp_min(1e-4), n_v.clamp_min(1e-4)
    g = nl / (nl * (1 - k) + k) * nv / (nv * (1 - k) + k)
    fresnel = f0 + (1 - f0) * (1 - v_h) ** 5
    spec = d * g * fresnel / (4 * nv)  # (· n_l / (4 n_l n_v)) = / (4 n_v)
    return torch.where((n_l > 0) & (n_v > 0), spec, torch.zeros_like(spec))


def estimate_sh(
    image: torch.Tensor,
    normals: torch.Tensor,
    mask: torch.Tensor,
    albedo: torch.Tensor | None = None,
    ridge: float = 1e-6,
) -> torch.Tensor:
    """Weighted least-squares SH radiance from an image: minimise Σ mask·(albedo·shading(n) − image)².

    image ``[B, C, H, W]``, normals ``[B, 3, H, W]`` (unit, same frame as the lighting), mask ``[B, 1, H, W]``
    (weights in [0, 1]; 0 = ignore), albedo ``None`` (= 1) or ``[B, C, H, W]`` / ``[B, 1, H, W]``.
    Returns radiance coefficients ``sh [B, C, 9]`` in this module's convention (see module docstring).
    ``ridge`` is a Tikhonov weight relative to the mean diagonal, so badly covered bands stay finite.
    """
    _check_image("image", image)
    _check_image("normals", normals, 3)
    _check_image("mask", mask.to(image.dtype) if mask.dtype == torch.bool else mask, 1)
    b, c = image.shape[:2]
    if normals.shape[0] != b or normals.shape[2:] != image.shape[2:]:
        raise ValueError(f"normals {tuple(normals.shape)} must match image {tuple(image.shape)} in B, H, W")
    w = mask.to(image.dtype).reshape(b, 1, -1)  # [B, 1, P]
    design = sh_basis(normals).reshape(b, 1, 9, -1) * _band_factors(image)[:, None]  # [B, 1, 9, P]
    if albedo is not None:
        _check_image("albedo", albedo)
        design = design * albedo.reshape(b, albedo.shape[1], 1, -1)  # [B, C|1, 9, P]
    design = design.expand(b, c, 9, design.shape[-1])
    target = image.reshape(b, c, -1)  # [B, C, P]
    wd = design * w[:, :, None]  # [B, C, 9, P]
    normal_mat = wd @ design.transpose(-1, -2)  # [B, C, 9, 9]
    rhs = (wd @ target.unsqueeze(-1)).squeeze(-1)  # [B, C, 9]
    diag_mean = normal_mat.diagonal(dim1=-2, dim2=-1).mean(-1).clamp_min(1e-12)
    eye = torch.eye(9, dtype=image.dtype, device=image.device)
    normal_mat = normal_mat + ridge * diag_mean[..., None, None] * eye
    return torch.linalg.solve(normal_mat, rhs.unsqueeze(-1)).squeeze(-1)


def _blur(x: torch.Tensor, sigma_px: float) -> torch.Tensor:
    """Separable Gaussian low-pass with replicate borders (pure torch)."""
    radius = max(1, int(math.ceil(3 * sigma_px)))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (t / sigma_px) ** 2)
    k = k / k.sum()
    c = x.shape[1]
    x = F.pad(x, (radius, radius, 0, 0), mode="replicate")
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    x = F.pad(x, (0, 0, radius, radius), mode="replicate")
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def estimate_sh_and_albedo(
    image: torch.Tensor,
    normals: torch.Tensor,
    mask: torch.Tensor,
    iterations: int = 4,
    sigma_px: float = 8.0,
    eps: float = 1e-6,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Alternate SH lighting and a smooth albedo: returns ``(sh [B, C, 9], albedo [B, C, H, W])``.

    The albedo starts as the masked mean colour; each round fits SH with the albedo fixed, then sets the
    albedo to the local (Gaussian, ``sigma_px``) least-squares ratio blur(m·I·S)/blur(m·S²). The product
    albedo·shading is what is determined; the split keeps the albedo low-pass so shading carries the
    geometry-dependent variation. Outside the mask the albedo is the blurred extrapolation.
    """
    _check_image("image", image)
    m = mask.to(image.dtype)
    msum = m.sum(dim=(2, 3), keepdim=True).clamp_min(eps)
    albedo = ((image * m).sum(dim=(2, 3), keepdim=True) / msum).expand_as(image).clone()
    sh = estimate_sh(image, normals, m, albedo)
    for _ in range(iterations):
        shading = sh_irradiance(normals, sh)
        num = _blur(m * image * shading, sigma_px)
        den = _blur(m * shading * shading, sigma_px)
        albedo = num / den.clamp_min(eps)
        sh = estimate_sh(image, normals, m, albedo)
    return sh, albedo
