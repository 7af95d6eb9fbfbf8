"""Shaded previews of the proxy and the detailed mesh, and the strip input | proxy | detailed | normal map.

Rendering goes through :mod:`fds.render` on the device the caller names (``device="cuda"``: nvdiffrast when it
builds; the CPU: the torch rasteriser). Views are eos-style scaled-orthographic
cameras: a frontal one fitted to the mesh (:func:`frontal_view`) or the photo's fitted pose
(:func:`pose_view`). Images are ``uint8 [H, W, 3]``, row 0 = top. Lighting is fixed, in the camera frame
(x right, y up, z towards the viewer): one white directional light from the upper left front
(:data:`LIGHT_DIR`), Lambert plus ambient, plus a faint Blinn-Phong highlight; grey albedo.

The detailed mesh is shaded with its smooth proxy normals plus the change of its geometric normals caused by
the displacement, n = normalise(n_phong + n_geo(displaced) − n_geo(undisplaced)): where the displacement is
zero it renders exactly as the proxy (no faceting of the subdivision), where it is not, the relief shows.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from fds.export.maps import write_png
from fds.mesh.bake import BakedMesh
from fds.mesh.meshdata import MeshData
from fds.render import (
    blinn_phong_specular,
    interpolate,
    rasterize,
    scaled_ortho_to_clip,
    texture,
    vertex_normals,
)

#: direction from the surface towards the light, camera frame (x right, y up, z to the viewer).
LIGHT_DIR = (-0.4, 0.5, 1.0)
AMBIENT, DIFFUSE, SPECULAR, SHININESS, ALBEDO = 0.22, 0.78, 0.12, 24.0, 0.8


@dataclass(frozen=True)
class View:
    """Scaled-orthographic camera: x_img = s·(R X)_x + tx_px, y_img = H − (s·(R X)_y + ty_px) (y down)."""

    rotation: np.ndarray  # [3, 3] model → camera
    scale: float  # pixels per mm
    tx_px: float
    ty_px: float
    width: int
    height: int


def frontal_view(vertices: np.ndarray, size: int = 512, margin: float = 0.06) -> View:
    """A frontal view (identity rotation) framing ``vertices [V, 3]`` (mm) in a ``size``² image."""
    v = np.asarray(vertices, np.float64)
    lo, hi = v[:, :2].min(0), v[:, :2].max(0)
    s = (1 - 2 * margin) * size / max(float((hi - lo).max()), 1e-6)
    centre = (lo + hi) / 2
    return View(np.eye(3), s, size / 2 - s * centre[0], size / 2 - s * centre[1], size, size)


def pose_view(pose, width: int, height: int) -> View:
    """The photo's view from an eos ``ScaledOrthoProjectionParameters`` (R, s, tx, ty; tx, ty in model units)."""
    s = float(pose.s)
    return View(np.asarray(pose.R, np.float64), s, s * float(pose.tx), s * float(pose.ty), int(width), int(height))


def _shade(n_cam: torch.Tensor, covered: torch.Tensor, background: float) -> np.ndarray:
    """Shading of camera-frame unit normals ``[1, 3, H, W]`` (see the module doc), background outside
    ``covered [1, 1, H, W]`` → uint8 RGB."""
    light = F.normalize(torch.tensor([LIGHT_DIR], dtype=n_cam.dtype, device=n_cam.device), dim=1)  # [1, 3]
    diffuse = (n_cam * light[:, :, None, None]).sum(1, keepdim=True).clamp_min(0)
    view_dir = torch.tensor([[0.0, 0.0, 1.0]], dtype=n_cam.dtype, device=n_cam.device)
    spec = blinn_phong_specular(n_cam, light, view_dir, SHININESS, SPECULAR)
    color = ALBEDO * (AMBIENT + DIFFUSE * diffuse) + spec  # [1, 1, H, W]
    color = torch.where(covered, color, torch.full_like(color, background)).clamp(0, 1)
    grey = (color[0, 0].cpu().numpy() * 255 + 0.5).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=2)


def _rasterize_view(vertices: np.ndarray, triangles: np.ndarray, view: View,
                    device: str | torch.device = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """``rast [1, H, W, 4]`` of the mesh in ``view`` and the view's rotation, both on ``device`` (the render
    backend ``auto``: nvdiffrast on CUDA, the torch rasteriser on the CPU)."""
    v = torch.from_numpy(np.asarray(vertices, np.float32)).to(device)
    tri = torch.from_numpy(np.asarray(triangles, np.int64)).to(device)
    rot = torch.from_numpy(np.asarray(view.rotation, np.float32)).to(device)
    clip = scaled_ortho_to_clip(v, rot, view.tx_px, view.ty_px, view.scale, view.width, view.height)
    return rasterize(clip, tri, (view.height, view.width), backend="auto"), rot


def render_shaded(
    vertices: np.ndarray, triangles: np.ndarray, normals: np.ndarray, view: View, background: float = 1.0
) -> np.ndarray:
    """Render ``vertices [V, 3]`` mm, ``triangles [T, 3]``, shading ``normals [V, 3]`` (model frame) → uint8 RGB."""
    tri = torch.from_numpy(np.asarray(triangles, np.int64))
    with torch.no_grad():
        rast, rot = _rasterize_view(vertices, triangles, view)
        n_cam = torch.from_numpy(np.asarray(normals, np.float32)) @ rot.T  # [V, 3] camera frame
        # degenerate (folded) triangles of a displaced mesh can give non-finite barycentrics: shade them flat
        n = F.normalize(torch.nan_to_num(interpolate(n_cam, rast, tri), 0.0, 0.0, 0.0), dim=-1)
        covered = rast[..., 3:4].permute(0, 3, 1, 2) > 0
        return _shade(n.permute(0, 3, 1, 2), covered, background)


def render_proxy_and_detail(
    proxy: MeshData, object_normal_map: np.ndarray, view: View, background: float = 1.0,
    device: str | torch.device = "cpu",
) -> tuple[np.ndarray, np.ndarray]:
    """The proxy shaded with its smooth normals, and shaded with the object-space normal map ``[R, R, 3]``
    (model frame, zero where uncovered: the smooth normal there), from one rasterisation of the proxy on
    ``device``.

    The second image is the detailed mesh's look without its 1.7M triangles: per pixel, the normal map's value
    at the proxy's UV is the normal of the displaced surface (``fds.export.normal_maps``), which is what
    :func:`render_detailed` shades with; silhouettes are the proxy's (the relief is sub-millimetre).
    """
    dev = torch.device(device)
    tri = torch.from_numpy(np.asarray(proxy.triangles, np.int64)).to(dev)
    uv_tri = torch.from_numpy(np.asarray(proxy.triangles if proxy.uv_triangles is None else proxy.uv_triangles,
                                         np.int64)).to(dev)
    with torch.no_grad():
        rast, rot = _rasterize_view(proxy.vertices, proxy.triangles, view, dev)
        covered = rast[..., 3:4].permute(0, 3, 1, 2) > 0
        smooth = torch.from_numpy(proxy_normals(proxy)).to(dev) @ rot.T
        n_smooth = F.normalize(interpolate(smooth, rast, tri), dim=-1)  # [1, H, W, 3]
        uv = interpolate(torch.from_numpy(np.asarray(proxy.uv, np.float32)).to(dev), rast, uv_tri)  # [1, H, W, 2]
        nmap = torch.from_numpy(np.asarray(object_normal_map, np.float32)).to(dev)
        n_map = texture(nmap[None], uv) @ rot.T  # [1, H, W, 3] camera frame; ~0 where the map is uncovered
        length = n_map.norm(dim=-1, keepdim=True)
        n_detail = torch.where(length > 0.5, n_map / length.clamp_min(1e-12), n_smooth)
        return (_shade(n_smooth.permute(0, 3, 1, 2), covered, background),
                _shade(n_detail.permute(0, 3, 1, 2), covered, background))


def preview_maps(maps, max_resolution: int = 1024):
    """``maps`` (:class:`fds.export.normal_maps.NormalMaps`) averaged down to ≤ ``max_resolution``² for previews
    (2×2… block means, renormalised; a texel is covered when most of its block is)."""
    from fds.export.normal_maps import NormalMaps

    r = maps.tangent.shape[0]
    k = max(1, r // int(max_resolution))
    if k == 1 or r % k:
        return maps

    def pool(a: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(np.ascontiguousarray(a, np.float32))
        t = t.permute(2, 0, 1)[None] if t.dim() == 3 else t[None, None]
        return F.avg_pool2d(t, k)[0]

    cov = pool(maps.coverage.astype(np.float32))[0] >= 0.5
    tangent = F.normalize(pool(maps.tangent), dim=0).permute(1, 2, 0)
    obj = F.normalize(pool(maps.object), dim=0).permute(1, 2, 0) * cov[..., None]
    return NormalMaps(tangent.numpy(), obj.numpy(), pool(maps.texel_mm).permute(1, 2, 0).numpy(), cov.numpy())


def proxy_normals(mesh: MeshData) -> np.ndarray:
    """Area-weighted unit vertex normals ``[V, 3]`` of a mesh (model frame)."""
    v = torch.from_numpy(np.asarray(mesh.vertices, np.float32))
    return vertex_normals(v, torch.from_numpy(np.asarray(mesh.triangles, np.int64))).numpy()


def detailed_normals(baked: BakedMesh) -> np.ndarray:
    """Shading normals of the baked mesh: n_phong + n_geo(displaced) − n_geo(undisplaced), normalised."""
    tri = torch.from_numpy(np.asarray(baked.mesh.triangles, np.int64))
    geo = vertex_normals(torch.from_numpy(baked.mesh.vertices), tri)
    flat = vertex_normals(torch.from_numpy(baked.base_vertices), tri)
    return F.normalize(torch.from_numpy(baked.normals) + geo - flat, dim=-1).numpy()


def render_proxy(proxy: MeshData, view: View) -> np.ndarray:
    """The proxy with its smooth vertex normals."""
    return render_shaded(proxy.vertices, proxy.triangles, proxy_normals(proxy), view)


def render_detailed(baked: BakedMesh, view: View) -> np.ndarray:
    """The baked detailed mesh (see the module doc for its shading normals)."""
    return render_shaded(baked.mesh.vertices, baked.mesh.triangles, detailed_normals(baked), view)


def _fit_height(image: np.ndarray, height: int) -> np.ndarray:
    im = np.asarray(image)
    if im.dtype != np.uint8:
        raise TypeError(f"preview panels are uint8 images, got {im.dtype}")
    if im.ndim == 2:
        im = np.repeat(im[..., None], 3, axis=2)
    if im.ndim != 3 or im.shape[2] not in (3, 4):
        raise ValueError(f"preview panels are [H, W, 3] images, got shape {im.shape}")
    im = im[..., :3]
    width = max(1, round(im.shape[1] * height / im.shape[0]))
    if im.shape[:2] == (height, width):
        return im
    return np.asarray(Image.fromarray(im).resize((width, height), Image.Resampling.LANCZOS))


def preview_strip(panels: list[np.ndarray], height: int = 512, gap: int = 4) -> np.ndarray:
    """Panels side by side at a common ``height`` (aspect kept), white ``gap`` pixels between → uint8 RGB."""
    if not panels:
        raise ValueError("preview_strip needs at least one panel")
    fitted = [_fit_height(p, height) for p in panels]
    spacer = np.full((height, gap, 3), 255, np.uint8)
    parts = [fitted[0]]
    for p in fitted[1:]:
        parts += [spacer, p]
    return np.concatenate(parts, axis=1)


def write_preview(
    path: str | os.PathLike,
    photo: np.ndarray,
    proxy_render: np.ndarray,
    detailed_render: np.ndarray,
    normal_map_rgb: np.ndarray,
    height: int = 512,
) -> Path:
    """Write the strip input | proxy shaded | detailed shaded | normal map (uint8 images) as PNG, atomically."""
    return write_png(path, preview_strip([photo, proxy_render, detailed_render, normal_map_rgb], height))
