"""Visibility-aware unwrapping of a photo into the face model's UV space, with fds's rasteriser.

For every texel of an ``R × R`` UV map (row 0 = v 0 = forehead side, image convention) covered by the
model's UV layout:

1. the UV rasterisation gives the texel's surface point: its photo position (0-based px, y down), its
   camera depth (mm, toward the viewer) and its camera-frame normal, interpolated from the fitted proxy;
2. a depth buffer of the proxy rasterised in photo space (over the face's bounding box, at photo
   resolution, or downscaled to ``depth_max_side``) tells whether the point is the nearest surface there:
   ``visible`` = inside the photo, facing the camera and within ``depth_tolerance_mm`` of the buffer —
   nose and cheek self-occlusion are masked;
3. ``confidence`` = visible × a ramp of n·view (the camera is orthographic, view = +z) from 0 at
   ``cos_min`` to 1 at ``cos_full``, down-weighting grazing angles;
4. the colour is the photo sampled bilinearly at the texel's photo position (0 where not visible).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from fds.facemodel import FaceModel
from fds.proxy.fit import FitResult

__all__ = ["UVTexture", "UnwrapConfig", "UnwrapResult", "unwrap_texture"]


@dataclass(frozen=True)
class UnwrapConfig:
    resolution: int = 1024  # UV map side, texels (512–4096)
    depth_max_side: int = 1024  # longest side of the photo-space depth buffer, px
    depth_tolerance_mm: float = 2.0
    cos_min: float = 0.1  # n·view below this: confidence 0
    cos_full: float = 0.5  # n·view above this: confidence 1
    backend: str = "auto"  # fds.render rasteriser backend


@dataclass(frozen=True)
class UnwrapResult:
    """A photo unwrapped into UV space, as a proxy keeps it; maps are ``[R, R]``, row 0 = v 0 (image convention)."""

    texture: np.ndarray  # uint8 [R, R, 3] RGB, 0 where not visible
    visibility: np.ndarray  # bool [R, R] texel seen in the photo (not occluded, facing the camera)
    confidence: np.ndarray  # float32 [R, R] in [0, 1]: visibility × n·view ramp


@dataclass(frozen=True)
class UVTexture(UnwrapResult):
    """An :class:`UnwrapResult` with the geometry it was sampled through (for checks; proxies do not keep it)."""

    coverage: np.ndarray  # bool [R, R] texel inside the model's UV layout
    texel_px: np.ndarray  # float32 [R, R, 2] photo position of each texel (0-based px, x col, y row down)


@lru_cache(maxsize=4)
def _uv_raster(fm: FaceModel, r: int, backend: str, device: str) -> torch.Tensor:
    """The face model's UV layout rasterised at ``r × r`` (``[1, R, R, 4]``; no grad): it depends on neither the
    photo nor the fit, so it is computed once per process and resolution. Callers must not modify it."""
    from fds.render.raster import rasterize

    uv = torch.as_tensor(fm.uv, dtype=torch.float32, device=device)  # [U, 2] image convention
    uv_tri = torch.as_tensor(fm.uv_triangles, dtype=torch.int64, device=device)
    pos_uv = torch.stack(
        [uv[:, 0] * 2 - 1, uv[:, 1] * 2 - 1, torch.zeros_like(uv[:, 0]), torch.ones_like(uv[:, 0])], -1
    )
    with torch.no_grad():
        return rasterize(pos_uv[None], uv_tri, (r, r), backend=backend)


def unwrap_texture(
    image: np.ndarray,
    fm: FaceModel,
    fit: FitResult,
    config: UnwrapConfig = UnwrapConfig(),
    device: str | torch.device = "cpu",
) -> UVTexture:
    """Unwrap ``image`` (uint8 [H, W, 3]) with the fitted proxy ``fit`` of face model ``fm``."""
    from fds.render.normals import vertex_normals
    from fds.render.raster import interpolate, rasterize

    if not 16 <= config.resolution <= 8192:
        raise ValueError(f"resolution must be in [16, 8192] texels, got {config.resolution}")
    h, w = image.shape[:2]
    if (h, w) != tuple(fit.image_size):
        raise ValueError(f"image is {h}×{w} but the fit was made for {fit.image_size[0]}×{fit.image_size[1]}")
    dev = torch.device(device)
    cam = torch.as_tensor(fit.camera_points(fit.vertices_mm), dtype=torch.float32, device=dev)  # [V, 3] mm
    px = torch.as_tensor(fit.project(fit.vertices_mm), dtype=torch.float32, device=dev)  # [V, 2] px y-down
    tri = torch.as_tensor(fm.triangles, dtype=torch.int64, device=dev)
    normals = vertex_normals(cam, tri)  # [V, 3] camera frame
    if float(normals[:, 2].mean()) < 0:  # triangles wound clockwise: flip so the face points at the camera
        normals = -normals

    # --- photo-space depth buffer over the face box --------------------------------------------------
    x0, y0 = np.floor(px.min(0).values.cpu().numpy()) - 2
    x1, y1 = np.ceil(px.max(0).values.cpu().numpy()) + 3
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if x1 <= x0 or y1 <= y0:
        raise ValueError("the fitted proxy projects entirely outside the photo")
    k = min(1.0, config.depth_max_side / max(x1 - x0, y1 - y0))
    dh, dw = int(np.ceil((y1 - y0) * k)), int(np.ceil((x1 - x0) * k))
    depth = -cam[:, 2]  # mm, larger = farther
    d_lo, d_hi = float(depth.min()) - 1.0, float(depth.max()) + 1.0
    z_ndc = (depth - d_lo) / (d_hi - d_lo) * 1.8 - 0.9  # [V] in (−0.9, 0.9)

    def to_buffer(p: torch.Tensor) -> torch.Tensor:  # photo px → depth-buffer px (pixel centres)
        return torch.stack([(p[..., 0] - x0 + 0.5) * k - 0.5, (p[..., 1] - y0 + 0.5) * k - 0.5], -1)

    q = to_buffer(px)
    ones = torch.ones_like(z_ndc)
    pos_img = torch.stack([(2 * q[:, 0] + 1) / dw - 1, (2 * q[:, 1] + 1) / dh - 1, z_ndc, ones], -1)
    rast_img = rasterize(pos_img[None], tri, (dh, dw), backend=config.backend)[0]  # [dh, dw, 4]
    zbuf = torch.where(rast_img[..., 3] > 0, rast_img[..., 2], torch.full_like(rast_img[..., 2], -2.0))

    # --- UV rasterisation -----------------------------------------------------------------------------
    r = config.resolution
    uv_tri = torch.as_tensor(fm.uv_triangles, dtype=torch.int64, device=dev)
    vid = torch.as_tensor(fm.uv_vertex_index(), dtype=torch.int64, device=dev)  # [U]
    rast_uv = _uv_raster(fm, r, config.backend, str(dev))  # [1, R, R, 4], the same for every photo
    attr = torch.cat([px[vid], z_ndc[vid, None], normals[vid]], dim=1)  # [U, 6]
    texel = interpolate(attr, rast_uv, uv_tri, backend=config.backend)[0]  # [R, R, 6]
    coverage = rast_uv[0, ..., 3] > 0
    t_px, t_z = texel[..., :2], texel[..., 2]
    n_z = F.normalize(texel[..., 3:6], dim=-1)[..., 2]

    # --- visibility and confidence ---------------------------------------------------------------------
    qb = to_buffer(t_px)
    col = qb[..., 0].round().long().clamp(0, dw - 1)
    row = qb[..., 1].round().long().clamp(0, dh - 1)
    z_front = zbuf[row, col]
    tol = config.depth_tolerance_mm * 1.8 / (d_hi - d_lo)
    tx, ty = t_px[..., 0], t_px[..., 1]
    inside = (tx >= -0.5) & (tx <= w - 0.5) & (ty >= -0.5) & (ty <= h - 0.5)
    visible = coverage & inside & (n_z > 0) & (z_front > -1.5) & (t_z <= z_front + tol)
    ramp = ((n_z - config.cos_min) / (config.cos_full - config.cos_min)).clamp(0, 1)
    confidence = torch.where(visible, ramp, torch.zeros_like(ramp))

    # --- colour -------------------------------------------------------------------------------------------
    img = torch.from_numpy(np.array(image[..., :3], np.float32)).to(dev).permute(2, 0, 1)[None]  # [1, 3, H, W]
    grid = torch.stack([(2 * t_px[..., 0] + 1) / w - 1, (2 * t_px[..., 1] + 1) / h - 1], -1)[None]
    colour = F.grid_sample(img, grid, mode="bilinear", padding_mode="border", align_corners=False)[0]
    colour = colour.permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8)
    colour = torch.where(visible[..., None], colour, torch.zeros_like(colour))
    return UVTexture(
        texture=colour.cpu().numpy(),
        visibility=visible.cpu().numpy(),
        confidence=confidence.float().cpu().numpy(),
        coverage=coverage.cpu().numpy(),
        texel_px=t_px.float().cpu().numpy(),
    )
