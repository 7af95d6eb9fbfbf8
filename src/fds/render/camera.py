"""Cameras → clip space for ``fds.render.rasterize``, and UV-space rasterisation.

Image convention used here (the project's): pixel coordinates ``(x, y)`` with x right, **y down**, pixel
centres at integers (as 0-based landmark coordinates): pixel (row r, column c) has its centre at (c, r).
All functions map y_img = 0 (the top row) to y_ndc ≈ −1, which is the row nvdiffrast writes first, so a
rasterised image comes out with **row 0 = top of the photo** (resp. v = 0, the top of the UV map) and needs
no flip. (This is a y-flip of OpenGL's y-up NDC; it only mirrors triangle winding on screen, and neither
backend culls back faces.) Depth: smaller z/w is nearer, as both backends keep the smallest.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from fds.render.raster import rasterize


def _batch(x: torch.Tensor, name: str, tail: int) -> torch.Tensor:
    if x.dim() == 2 and x.shape[-1] == tail:
        return x.unsqueeze(0)
    if x.dim() != 3 or x.shape[-1] != tail:
        raise ValueError(f"{name} must be [B, V, {tail}] or [V, {tail}], got {tuple(x.shape)}")
    return x


def pixels_to_clip(
    xy_px: torch.Tensor, z_ndc: torch.Tensor, width: int, height: int, w: torch.Tensor | None = None
) -> torch.Tensor:
    """Image points ``xy_px [B, V, 2]`` (y down, centres at integers) and ``z_ndc [B, V]`` → ``[B, V, 4]``.

    x_ndc = (2x + 1)/W − 1, y_ndc = (2y + 1)/H − 1; with ``w`` (``[B, V]``) the result is scaled by it
    (homogeneous, for perspective-correct interpolation).
    """
    x = (2 * xy_px[..., 0] + 1) / width - 1
    y = (2 * xy_px[..., 1] + 1) / height - 1
    clip = torch.stack([x, y, z_ndc, torch.ones_like(x)], dim=-1)
    return clip if w is None else clip * w.unsqueeze(-1)


def scaled_ortho_to_clip(
    vertices: torch.Tensor,
    rotation: torch.Tensor,
    tx_px: torch.Tensor | float,
    ty_px: torch.Tensor | float,
    scale: torch.Tensor | float,
    width: int,
    height: int,
    depth_scale: float | None = None,
) -> torch.Tensor:
    """eos's scaled-orthographic camera → clip coordinates ``[B, V, 4]`` (w = 1).

    vertices ``[B, V, 3]`` or ``[V, 3]`` in model space (y up, the camera looks along −z); rotation
    ``[B, 3, 3]`` or ``[3, 3]``; ``tx_px``, ``ty_px`` (pixels, in eos's y-up viewport) and ``scale``
    (pixels per model unit) are numbers or ``[B]`` tensors. As eos's ``get_3x4_affine_camera_matrix``:
    x_img = s·(R X)_x + tx_px, y_img = H − (s·(R X)_y + ty_px) (y down). Depth: z_ndc = −s·(R X)_z /
    ``depth_scale`` (nearer = smaller); by default ``depth_scale`` = 1.01 × the largest |s·(R X)_z| of each
    batch item (detached), which keeps all vertices inside the clip volume.
    """
    v = _batch(vertices, "vertices", 3)
    r = rotation if rotation.dim() == 3 else rotation.unsqueeze(0)
    if r.shape[-2:] != (3, 3):
        raise ValueError(f"rotation must be [B, 3, 3] or [3, 3], got {tuple(rotation.shape)}")
    ref = v

    def per_batch(a) -> torch.Tensor:
        t = torch.as_tensor(a, dtype=ref.dtype, device=ref.device)
        return t.reshape(-1, 1)  # [B|1, 1]

    s, tx, ty = per_batch(scale), per_batch(tx_px), per_batch(ty_px)
    cam = s.unsqueeze(-1) * torch.einsum("bij,bvj->bvi", r.to(v), v)  # [B, V, 3] pixels
    x_img = cam[..., 0] + tx
    y_img = height - (cam[..., 1] + ty)
    depth = -cam[..., 2]
    if depth_scale is None:
        scale_z = depth.detach().abs().amax(dim=-1, keepdim=True).clamp_min(1e-6) * 1.01
    else:
        scale_z = torch.as_tensor(depth_scale, dtype=v.dtype, device=v.device)
    # eos fits (x_img, y_img) to the landmarks as given, so they share the landmarks' convention (centres
    # at integers) and need no half-pixel shift.
    xy = torch.stack([x_img, y_img], dim=-1)
    return pixels_to_clip(xy, depth / scale_z, width, height)


def eos_pose_to_clip(vertices: torch.Tensor, pose, width: int, height: int, **kw) -> torch.Tensor:
    """Clip coordinates from an eos ``ScaledOrthoProjectionParameters`` (attributes R, s, tx, ty).

    eos stores the translation divided by the scale (model units), so tx_px = s·tx, ty_px = s·ty.
    ``vertices [V, 3]`` or ``[1, V, 3]``; returns ``[1, V, 4]``.
    """
    v = _batch(vertices, "vertices", 3)
    rot = torch.as_tensor(np.array(pose.R), dtype=v.dtype, device=v.device)
    s = float(pose.s)
    return scaled_ortho_to_clip(v, rot, s * float(pose.tx), s * float(pose.ty), s, width, height, **kw)


def perspective_to_clip(
    points_cam: torch.Tensor,
    fx: float,
    fy: float,
    cx: float,
    cy: float,
    width: int,
    height: int,
    near: float = 0.01,
    far: float = 100.0,
) -> torch.Tensor:
    """Pinhole camera (OpenCV frame: x right, y down, z forward) → clip coordinates ``[B, V, 4]``.

    ``points_cam [B, V, 3]`` or ``[V, 3]``; focal lengths and principal point in pixels, centres at integers
    (x_img = fx·X/Z + cx). w = Z; z/w runs from −1 at ``near`` to 1 at ``far`` (same unit as the points).
    Points behind the camera (Z ≤ 0) are rejected by the rasteriser, not projected.
    """
    p = _batch(points_cam, "points_cam", 3)
    x, y, z = p.unbind(-1)
    x_clip = (2 * (fx * x + cx * z) + z) / width - z
    y_clip = (2 * (fy * y + cy * z) + z) / height - z
    z_clip = (far + near) / (far - near) * z - 2 * far * near / (far - near)
    return torch.stack([x_clip, y_clip, z_clip, z], dim=-1)


def uv_to_clip(uv: torch.Tensor) -> torch.Tensor:
    """UV coordinates ``[U, 2]`` (u right, v down, in [0, 1]) → clip ``[1, U, 4]`` for UV-space rasterisation.

    x = 2u − 1, y = 2v − 1, z = 0, w = 1: texel (row r, column c) of an H×W map has its centre at
    uv = ((c + 0.5)/W, (r + 0.5)/H), the same texel centres ``texture`` samples.
    """
    if uv.dim() != 2 or uv.shape[-1] != 2:
        raise ValueError(f"uv must be [U, 2] texture coordinates, got {tuple(uv.shape)}")
    if not uv.is_floating_point():
        raise TypeError(f"uv must be floating point, got {uv.dtype}")
    zeros = torch.zeros_like(uv[:, :1])
    return torch.cat([2 * uv - 1, zeros, torch.ones_like(zeros)], dim=-1).unsqueeze(0)


def rasterize_uv(
    uv: torch.Tensor, uv_tri: torch.Tensor, resolution: tuple[int, int], backend: str = "auto"
) -> torch.Tensor:
    """Rasterise the UV chart: ``rast [1, H, W, 4]`` with **row 0 = v ≈ 0 (top of the UV map)**.

    nvdiffrast writes the row of y_ndc = −1 first; ``uv_to_clip`` sends v = 0 to y_ndc = −1, so the
    bottom-up rows of nvdiffrast coincide with the top-down rows of an image-convention UV map: no flip.
    Use ``interpolate(attr, rast, uv_tri)`` to bake per-vertex attributes (positions, normals, frames)
    into texel maps (``[1, H, W, C]``; permute to ``[1, C, H, W]`` for the networks).
    """
    return rasterize(uv_to_clip(uv), uv_tri, resolution, backend=backend)


@dataclass
class PinholeCamera:
    """A perspective camera looking at a model placed in front of it.

    Camera frame as the proxy stage's (x right, y up, **z toward the viewer**: the camera sits at the origin and
    looks along −z); a model point v (mm, model frame) is at ``rotation @ v + translation_mm`` in it. Pixels are
    0-based centres, x = column, y = row **down**: x = cx + fx·X/(−Z), y = cy − fy·Y/(−Z).
    """

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int
    rotation: np.ndarray  # float64 [3, 3] model → camera
    translation_mm: np.ndarray  # float64 [3]

    def to_camera(self, points_mm: np.ndarray) -> np.ndarray:
        """Model points ``[N, 3]`` → camera frame ``[N, 3]`` (mm)."""
        return np.asarray(points_mm, np.float64) @ self.rotation.T + self.translation_mm

    def project(self, points_cam: np.ndarray) -> np.ndarray:
        """Camera-frame points ``[N, 3]`` → pixels ``[N, 2]`` (0-based, y down)."""
        p = np.asarray(points_cam, np.float64)
        z = -p[:, 2]
        return np.stack([self.cx + self.fx * p[:, 0] / z, self.cy - self.fy * p[:, 1] / z], 1)

    def ray_directions(self, pixels: np.ndarray) -> np.ndarray:
        """Unit camera-frame directions ``[N, 3]`` of the rays through ``pixels [N, 2]`` (from the origin)."""
        px = np.asarray(pixels, np.float64)
        d = np.stack([(px[:, 0] - self.cx) / self.fx, -(px[:, 1] - self.cy) / self.fy, -np.ones(len(px))], 1)
        return d / np.linalg.norm(d, axis=1, keepdims=True)

    def clip(self, points_cam: torch.Tensor, window: tuple[int, int, int, int] | None = None,
             near: float = 10.0, far: float = 10_000.0) -> torch.Tensor:
        """Clip coordinates ``[1, N, 4]`` for :func:`fds.render.rasterize` over the pixel ``window`` (x0, y0,
        x1, y1; default the whole image), so the raster's pixel (r, c) is the photo's (y0 + r, x0 + c)."""
        x0, y0, x1, y1 = window or (0, 0, self.width, self.height)
        cv = points_cam * torch.tensor([1.0, -1.0, -1.0], dtype=points_cam.dtype)  # OpenCV: y down, z forward
        return perspective_to_clip(cv, self.fx, self.fy, self.cx - x0, self.cy - y0, x1 - x0, y1 - y0, near, far)

    def to_dict(self) -> dict:
        return {"fx": self.fx, "fy": self.fy, "cx": self.cx, "cy": self.cy, "width": self.width,
                "height": self.height, "rotation": np.round(self.rotation, 8).tolist(),
                "translation_mm": np.round(self.translation_mm, 5).tolist()}
