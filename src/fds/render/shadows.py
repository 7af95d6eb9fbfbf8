"""Cast shadows of distant lights by shadow mapping with fds's rasteriser.

A :class:`ShadowMap` is the depth image of a mesh seen from a distant light along ``−light_dir`` through an
orthographic camera that frames the mesh. A point is lit when nothing lies between it and the light: its depth
along the light's travel is at most the stored (nearest) depth plus a bias. Lookups use percentage-closer
filtering over a ``(2k+1)²`` texel window, so shadow edges are soft over about ``k`` texels, and an area light
of angular radius ρ is approximated by averaging shadow maps of several directions inside its cone.

Frames: positions in any right-handed frame and unit (fds uses mm, camera frame); ``light_dir`` is the unit
vector *from the surface toward the light* in the same frame. Depth = −(p · light_dir): smaller = nearer to the
light, which is what the rasteriser keeps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from fds.render.raster import rasterize


def light_basis(light_dir: torch.Tensor) -> torch.Tensor:
    """Orthonormal rows ``[3, 3]`` (a, b, l): a, b span the light's image plane, l = ``light_dir`` normalised."""
    l_dir = F.normalize(light_dir.reshape(3).double(), dim=0)
    helper = torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)
    if abs(float(l_dir @ helper)) > 0.9:
        helper = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    a = F.normalize(torch.linalg.cross(helper, l_dir, dim=0), dim=0)
    b = torch.linalg.cross(l_dir, a, dim=0)
    return torch.stack([a, b, l_dir])


@dataclass
class ShadowMap:
    """Depth of the surface nearest to a distant light, per texel of an orthographic light view.

    ``basis [3,3]`` rows (a, b, l); texel (row, col) centre at a·p = lo_a + (col + .5)·texel, b·p = lo_b +
    (row + .5)·texel. ``depth [S, S]`` = −(p · l) of the nearest surface (``+inf`` where empty), same unit as
    the positions.
    """

    basis: torch.Tensor  # float64 [3, 3]
    lo: tuple[float, float]  # (a, b) of the map's corner
    texel: float  # length unit per texel
    depth: torch.Tensor  # float32 [S, S]

    def visibility(self, points: torch.Tensor, normals: torch.Tensor | None = None, bias: float | None = None,
                   pcf_radius: int = 1) -> torch.Tensor:
        """Fraction in [0, 1] of the PCF window that sees the light, at ``points [..., 3]``.

        ``bias`` (length unit) defaults to 1.5 texels; with ``normals [..., 3]`` it grows with the slope
        tan(θ) of the surface to the light (≤ 4×), the usual slope-scaled bias against self-shadowing acne.
        Points outside the map are lit.
        """
        shape = points.shape[:-1]
        p = points.reshape(-1, 3).double()
        q = p @ self.basis.T.to(p)  # [N, 3] (a, b, l)
        depth = -q[:, 2]
        b: float | torch.Tensor = 1.5 * self.texel if bias is None else float(bias)
        if normals is not None:
            cos = (normals.reshape(-1, 3).double() @ self.basis[2].to(p)).clamp(0.2, 1.0)
            b = b * (1 + (1 - cos**2).sqrt() / cos).clamp(max=4.0)
        s = self.depth.shape[0]
        col = (q[:, 0] - self.lo[0]) / self.texel - 0.5
        row = (q[:, 1] - self.lo[1]) / self.texel - 0.5
        stored = self.depth.double()
        lit = torch.zeros_like(depth)
        count = 0
        for dr in range(-pcf_radius, pcf_radius + 1):
            for dc in range(-pcf_radius, pcf_radius + 1):
                r = (row + dr).round().long()
                c = (col + dc).round().long()
                inside = (r >= 0) & (r < s) & (c >= 0) & (c < s)
                d = stored[r.clamp(0, s - 1), c.clamp(0, s - 1)]
                lit += (~inside | (depth <= d + b)).double()
                count += 1
        return (lit / count).float().reshape(shape)


def shadow_map(vertices: torch.Tensor, triangles: torch.Tensor, light_dir: torch.Tensor, resolution: int = 1024,
               margin: float = 0.02, backend: str = "auto") -> ShadowMap:
    """Shadow map ``[S, S]`` of a mesh (``vertices [V, 3]``, ``triangles [T, 3]``) for a distant light."""
    if vertices.dim() != 2 or vertices.shape[-1] != 3:
        raise ValueError(f"vertices must be [V, 3], got {tuple(vertices.shape)}")
    basis = light_basis(light_dir)
    q = vertices.double() @ basis.T.to(vertices.device)  # [V, 3]
    lo = q[:, :2].min(0).values
    hi = q[:, :2].max(0).values
    extent = float((hi - lo).max()) * (1 + 2 * margin)
    centre = (lo + hi) / 2
    corner = centre - extent / 2
    texel = extent / resolution
    depth = -q[:, 2]
    d_lo, d_hi = float(depth.min()), float(depth.max())
    span = max(d_hi - d_lo, 1e-9)
    z = (depth - d_lo) / span * 1.8 - 0.9  # (−0.9, 0.9), nearer to the light = smaller
    xy = (q[:, :2] - corner) / extent * 2 - 1  # [−1, 1]: col along a, row along b
    pos = torch.cat([xy, z[:, None], torch.ones_like(z)[:, None]], 1).float()[None]
    rast = rasterize(pos, triangles, (resolution, resolution), backend=backend)[0]
    covered = rast[..., 3] > 0
    stored = (rast[..., 2].double() + 0.9) / 1.8 * span + d_lo
    stored = torch.where(covered, stored, torch.full_like(stored, math.inf))
    return ShadowMap(basis, (float(corner[0]), float(corner[1])), texel, stored.float().cpu())


def cone_directions(light_dir: torch.Tensor, radius_rad: float, count: int) -> torch.Tensor:
    """``count`` unit directions ``[count, 3]`` spread over a cone of half-angle ``radius_rad`` around
    ``light_dir`` (the centre, then a golden-angle spiral), for area lights seen as small discs."""
    basis = light_basis(light_dir)
    if count <= 1 or radius_rad <= 0:
        return basis[2:3].float()
    k = torch.arange(count, dtype=torch.float64)
    r = torch.sqrt(k / (count - 1)) * math.tan(radius_rad)
    phi = k * math.pi * (3 - math.sqrt(5))
    across = torch.cos(phi)[:, None] * basis[0][None] + torch.sin(phi)[:, None] * basis[1][None]
    d = basis[2][None] + r[:, None] * across
    return F.normalize(d, dim=1).float()


def area_light_visibility(vertices: torch.Tensor, triangles: torch.Tensor, points: torch.Tensor,
                          normals: torch.Tensor | None, light_dir: torch.Tensor, radius_rad: float = 0.0,
                          samples: int = 6, resolution: int = 1024, pcf_radius: int = 1,
                          backend: str = "auto") -> torch.Tensor:
    """Visibility in [0, 1] of a disc light (angular radius ``radius_rad``; 0 = a hard directional light) at
    ``points [..., 3]``: the mean over ``samples`` shadow maps of directions inside its cone."""
    dirs = cone_directions(light_dir, radius_rad, samples if radius_rad > 0 else 1)
    vis = torch.zeros(points.shape[:-1])
    for d in dirs:
        smap = shadow_map(vertices, triangles, d, resolution, backend=backend)
        vis += smap.visibility(points, normals, pcf_radius=pcf_radius)
    return vis / len(dirs)
