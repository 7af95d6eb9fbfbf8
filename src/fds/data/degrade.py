"""Degrade a clean UV texture the way a photo unwrapped through a fitted proxy is degraded.

All functions take a numpy ``Generator`` so a sample is reproducible from its seed. Maps are torch
``[1, C, R, R]`` float32 in [0, 1] (UV image convention, row 0 = top of the map).

- :func:`view_visibility`: soft visibility of each texel for a random head pose (cosine between the proxy
  normal and the view direction); texels seen at grazing angles are also resampled from fewer pixels;
- :func:`misregistration_warp`: a smooth random displacement field of a few texels (proxy/landmark error);
- :func:`degrade_texture`: resolution loss, blur, noise and JPEG, then missing texels (visibility → 0).
"""

from __future__ import annotations

import io

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image


def view_visibility(rng: np.random.Generator, normal: torch.Tensor, covered: torch.Tensor,
                    max_yaw_deg: float = 40.0, max_pitch_deg: float = 15.0) -> tuple[torch.Tensor, dict]:
    """Soft visibility ``[1,1,R,R]`` in [0, 1] for a random yaw/pitch; ``normal [1,3,R,R]`` model frame."""
    yaw, pitch = np.deg2rad(rng.uniform(-max_yaw_deg, max_yaw_deg)), np.deg2rad(rng.uniform(-max_pitch_deg,
                                                                                              max_pitch_deg))
    view = torch.tensor([np.sin(yaw) * np.cos(pitch), np.sin(pitch), np.cos(yaw) * np.cos(pitch)],
                        dtype=normal.dtype)  # direction from the face towards the camera, model frame
    cos = (normal * view.view(1, 3, 1, 1)).sum(1, keepdim=True)
    vis = ((cos - 0.05) / 0.3).clamp(0, 1) * covered
    return vis, {"yaw_deg": float(np.rad2deg(yaw)), "pitch_deg": float(np.rad2deg(pitch))}


def gaussian_blur(x: torch.Tensor, sigma_px: float) -> torch.Tensor:
    """Separable Gaussian blur with reflected borders; ``sigma_px`` ≤ 0.2 returns ``x``."""
    if sigma_px <= 0.2:
        return x
    radius = int(np.ceil(3 * sigma_px))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype)
    k = torch.exp(-0.5 * (t / sigma_px) ** 2)
    k = k / k.sum()
    c = x.shape[1]
    x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="reflect"), k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(F.pad(x, (0, 0, radius, radius), mode="reflect"), k.view(1, 1, -1, 1).expand(c, 1, -1, 1),
                    groups=c)


def misregistration_warp(rng: np.random.Generator, resolution: int, max_shift_px: float, nodes: int = 6
                         ) -> torch.Tensor:
    """A smooth random sampling grid ``[1,R,R,2]`` (grid_sample convention) shifting texels by up to
    ``max_shift_px`` texels, smooth over ~R/``nodes``."""
    r = resolution
    amp = rng.uniform(0, max_shift_px)
    coarse = torch.from_numpy(rng.uniform(-1, 1, (1, 2, nodes, nodes)).astype(np.float32)) * amp
    shift = F.interpolate(coarse, size=(r, r), mode="bicubic", align_corners=True)  # [1,2,R,R] texels
    lin = (torch.arange(r, dtype=torch.float32) + 0.5) / r * 2 - 1
    gy, gx = torch.meshgrid(lin, lin, indexing="ij")
    grid = torch.stack([gx, gy], -1).unsqueeze(0)
    return grid + shift.permute(0, 2, 3, 1) * (2.0 / r)


def jpeg(x: torch.Tensor, quality: int) -> torch.Tensor:
    """JPEG round trip of an RGB ``[1,3,R,R]`` image in [0, 1] at ``quality`` (PIL, 4:2:0)."""
    arr = (x[0].permute(1, 2, 0).clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=int(quality))
    out = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"), np.float32) / 255
    return torch.from_numpy(out).permute(2, 0, 1).unsqueeze(0)


def degrade_texture(rng: np.random.Generator, clean: torch.Tensor, visibility: torch.Tensor,
                    strength: float = 1.0) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """Clean UV rendering ``[1,3,R,R]`` + visibility ``[1,1,R,R]`` → (degraded texture, warped visibility,
    parameters). ``strength`` scales every degradation (0 = none)."""
    r = clean.shape[-1]
    s = float(strength)
    info: dict = {}
    grid = misregistration_warp(rng, r, max_shift_px=s * 3.0 * r / 1024)
    x = F.grid_sample(clean, grid, mode="bilinear", padding_mode="border", align_corners=False)
    vis = F.grid_sample(visibility, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    # resolution of the face in the photo: down- then up-sample
    factor = 1.0 + s * rng.uniform(0.0, 3.0)
    info["downscale"] = float(factor)
    if factor > 1.05:
        small = max(int(r / factor), 8)
        x = F.interpolate(F.interpolate(x, size=(small, small), mode="area"), size=(r, r), mode="bilinear",
                          align_corners=False)
    sigma = s * rng.uniform(0.0, 1.0) * r / 1024
    info["blur_sigma_px"] = float(sigma)
    x = gaussian_blur(x, sigma)
    # grazing texels come from fewer photo pixels: blend towards a blurrier copy where visibility is low
    if s > 0:
        x = vis * x + (1 - vis) * gaussian_blur(x, 2.0 * r / 1024 * s + 0.3)
    noise = s * rng.uniform(0.0, 0.025)
    info["noise_sigma"] = float(noise)
    x = x + torch.from_numpy(rng.standard_normal(x.shape).astype(np.float32)) * noise
    quality = int(round(95 - s * rng.uniform(0, 55))) if s > 0 else 100
    info["jpeg_quality"] = quality
    x = jpeg(x, quality) if quality < 96 else x.clamp(0, 1)
    missing = vis < 0.02
    x = torch.where(missing, torch.zeros_like(x), x)
    return x, vis, info
