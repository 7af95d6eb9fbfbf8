"""Procedural test meshes (for tests, benchmarks and previews)."""

from __future__ import annotations

import math

import torch


def uv_sphere(
    n_lat: int, n_lon: int, radius: float = 1.0, dtype: torch.dtype = torch.float32
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Latitude-longitude sphere: ``(vertices [V, 3], triangles [T, 3] int64, uvs [V, 2])``.

    Object space y-up; triangles counter-clockwise seen from outside (outward normals);
    T = 2·n_lat·n_lon − 2·n_lon. UVs in image convention: u = longitude / 2π growing eastwards seen from
    outside (towards +x from the +z meridian), v = 0 at the north pole (top of the map), 1 at the south pole.
    The seam column is duplicated so UVs are continuous.
    """
    if n_lat < 2 or n_lon < 3:
        raise ValueError(f"n_lat must be ≥ 2 and n_lon ≥ 3, got {n_lat}, {n_lon}")
    v = torch.linspace(0, 1, n_lat + 1, dtype=torch.float64)
    u = torch.linspace(0, 1, n_lon + 1, dtype=torch.float64)
    vv, uu = torch.meshgrid(v, u, indexing="ij")  # [n_lat+1, n_lon+1]
    theta = vv * math.pi  # polar angle from +y
    phi = uu * 2 * math.pi  # longitude from +z towards +x
    verts = torch.stack([theta.sin() * phi.sin(), theta.cos(), theta.sin() * phi.cos()], dim=-1) * radius
    uvs = torch.stack([uu, vv], dim=-1)
    idx = torch.arange((n_lat + 1) * (n_lon + 1)).view(n_lat + 1, n_lon + 1)
    a, b = idx[:-1, :-1], idx[:-1, 1:]  # row i (north), columns j, j+1
    c, d = idx[1:, :-1], idx[1:, 1:]  # row i+1 (south)
    upper = torch.stack([a, c, b], dim=-1)[1:]  # skip degenerate triangles at the north pole
    lower = torch.stack([b, c, d], dim=-1)[:-1]  # skip degenerate triangles at the south pole
    tris = torch.cat([upper.reshape(-1, 3), lower.reshape(-1, 3)], dim=0)
    return verts.reshape(-1, 3).to(dtype), tris, uvs.reshape(-1, 2).to(dtype)
