"""Baking a displacement map into geometry: subdivide the proxy, displace along its smooth normals.

Positions are mm in the face model's frame (x right, y up, z to the viewer). UVs are per triangle corner in
the image convention (u right, v down; OBJ/PLY/glTF files store t = 1 − v).

Subdivision is the 1→4 midpoint split, applied to the position triangles and the UV triangles with the same
corner pattern, so seams stay seams (a 3D edge on a UV seam gets one new vertex and two new UVs). It keeps the
proxy's surface exactly (every new vertex lies on a proxy triangle); the displacement direction at a new
vertex is the proxy's area-weighted vertex normals interpolated linearly over the triangle and normalised
(Phong normals), i.e. the frame the displacement map is defined in. Each vertex takes the displacement map's
bilinear value at its UV (the mean over its UVs for seam vertices, so the mesh stays closed) and moves by
d_mm along that normal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from fds.mesh.meshdata import MeshData
from fds.render import texture, vertex_normals

#: default cap on the baked mesh's triangles (SFM: 6,736 · 4³ = 431k at 3 levels, ~17 MB as glTF with its
#: normal map; 4 levels, 1.72M triangles, need max_triangles=2_000_000 and write a 122 MB OBJ).
DEFAULT_MAX_TRIANGLES = 500_000


@dataclass
class BakedMesh:
    """A displaced, subdivided proxy. ``mesh.vertices`` = ``base_vertices + displacement_mm · normals``."""

    mesh: MeshData  # displaced mesh, mm, with per-corner UVs
    base_vertices: np.ndarray  # [V, 3] float32 mm, the subdivided proxy surface
    normals: np.ndarray  # [V, 3] float32 unit displacement directions (interpolated smooth proxy normals)
    displacement_mm: np.ndarray  # [V] float32, the map sampled at each vertex
    levels: int  # 1→4 subdivision steps applied


def _split(tri: np.ndarray, num: int) -> tuple[np.ndarray, np.ndarray]:
    """One 1→4 split of ``tri [T, 3]`` over ``num`` points → (new triangles ``[4T, 3]``, edge ends ``[E, 2]``).

    New point ``num + k`` is the midpoint of edge k; triangle (a, b, c) becomes (a, ab, ca), (ab, b, bc),
    (ca, bc, c), (ab, bc, ca), all with the parent's orientation.
    """
    t = tri.shape[0]
    e = np.concatenate([tri[:, [0, 1]], tri[:, [1, 2]], tri[:, [2, 0]]]).astype(np.int64)  # [3T, 2]
    lo, hi = e.min(1), e.max(1)
    uniq, inv = np.unique(lo * num + hi, return_inverse=True)
    ends = np.stack([uniq // num, uniq % num], axis=1)
    mid = num + inv.reshape(3, t).T  # [T, 3]: ab, bc, ca
    a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]
    ab, bc, ca = mid[:, 0], mid[:, 1], mid[:, 2]
    new = np.stack([np.stack([a, ab, ca], 1), np.stack([ab, b, bc], 1), np.stack([ca, bc, c], 1),
                    np.stack([ab, bc, ca], 1)], axis=1)  # [T, 4, 3]
    return new.reshape(-1, 3), ends


def subdivide(mesh: MeshData, levels: int, attributes: np.ndarray | None = None):
    """``levels`` 1→4 midpoint splits → (``MeshData``, attributes ``[V', C]`` linearly interpolated or None).

    Vertices keep their indices (new ones are appended), so ``out.vertices[:V]`` is the input's.
    """
    if levels < 0:
        raise ValueError(f"levels must be ≥ 0, got {levels}")
    v = np.asarray(mesh.vertices, np.float64)
    tri = np.asarray(mesh.triangles, np.int64)
    attr = None if attributes is None else np.asarray(attributes, np.float64)
    if attr is not None and attr.shape[0] != v.shape[0]:
        raise ValueError(f"attributes must have one row per vertex ({v.shape[0]}), got {attr.shape}")
    uv = None if mesh.uv is None else np.asarray(mesh.uv, np.float64)
    uv_tri = None if uv is None else np.asarray(tri if mesh.uv_triangles is None else mesh.uv_triangles, np.int64)
    for _ in range(levels):
        new_tri, ends = _split(tri, len(v))
        v = np.concatenate([v, 0.5 * (v[ends[:, 0]] + v[ends[:, 1]])])
        if attr is not None:
            attr = np.concatenate([attr, 0.5 * (attr[ends[:, 0]] + attr[ends[:, 1]])])
        if uv is not None and uv_tri is not None:
            uv_tri, uv_ends = _split(uv_tri, len(uv))
            uv = np.concatenate([uv, 0.5 * (uv[uv_ends[:, 0]] + uv[uv_ends[:, 1]])])
        tri = new_tri
    out = MeshData(
        vertices=v.astype(np.float32),
        triangles=tri.astype(np.int32),
        uv=None if uv is None else uv.astype(np.float32),
        uv_triangles=None if uv_tri is None else uv_tri.astype(np.int32),
    )
    return out, attr


def mean_uv_edge(mesh: MeshData) -> float:
    """Mean length of the triangle edges in UV units."""
    if mesh.uv is None:
        raise ValueError("the mesh has no UVs; the proxy must carry its UV chart to bake a displacement map")
    uv_tri = mesh.triangles if mesh.uv_triangles is None else mesh.uv_triangles
    c = np.asarray(mesh.uv, np.float64)[np.asarray(uv_tri)]
    return float(np.linalg.norm(c - np.roll(c, 1, axis=1), axis=-1).mean())


def subdivision_levels(
    mesh: MeshData, resolution: int, max_triangles: int = DEFAULT_MAX_TRIANGLES, texels_per_edge: float = 1.0
) -> int:
    """Fewest 1→4 splits that bring the mean UV edge to ≤ ``texels_per_edge`` texels of an R×R map, but no more
    than keep the triangle count ≤ ``max_triangles``."""
    edge_texels = mean_uv_edge(mesh) * resolution
    wanted = max(0, math.ceil(math.log2(max(edge_texels / texels_per_edge, 1.0))))
    t = len(mesh.triangles)
    cap = 0
    while t * 4 ** (cap + 1) <= max_triangles:
        cap += 1
    return min(wanted, cap)


def sample_map(values: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Bilinear samples (clamped borders) of a map ``[R, R]`` at ``uv [N, 2]`` (image convention) → ``[N]``."""
    tex = torch.from_numpy(np.asarray(values, np.float32))[None, :, :, None]  # [1, R, R, 1]
    grid = torch.from_numpy(np.asarray(uv, np.float32))[None, None]  # [1, 1, N, 2]
    return texture(tex, grid)[0, 0, :, 0].numpy()


def bake_displacement(
    proxy: MeshData,
    displacement_mm: np.ndarray,
    levels: int | None = None,
    max_triangles: int = DEFAULT_MAX_TRIANGLES,
) -> BakedMesh:
    """Subdivide ``proxy`` (mm, with UVs) and displace it by ``displacement_mm [R, R]`` (mm along the normal).

    ``levels`` defaults to :func:`subdivision_levels` (≈ one texel per edge, capped at ``max_triangles``).
    """
    d_map = np.asarray(displacement_mm, np.float32)
    if d_map.ndim != 2:
        raise ValueError(f"displacement_mm must be a [R, R] map in mm, got shape {d_map.shape}")
    if not np.isfinite(d_map).all():
        raise ValueError("displacement_mm holds NaN/inf; set uncovered texels to 0")
    if proxy.uv is None:
        raise ValueError("proxy has no UVs (MeshData.uv is None); bake needs the UV chart of the displacement map")
    if levels is None:
        levels = subdivision_levels(proxy, d_map.shape[0], max_triangles)
    v0 = torch.from_numpy(np.asarray(proxy.vertices, np.float32))
    n0 = vertex_normals(v0, torch.from_numpy(np.asarray(proxy.triangles, np.int64))).numpy()
    fine, n = subdivide(proxy, levels, n0)
    normals = (n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)).astype(np.float32)
    # one displacement per vertex: the mean over its distinct UVs (seam vertices have several)
    tri = fine.triangles.reshape(-1).astype(np.int64)
    uv_tri = (fine.triangles if fine.uv_triangles is None else fine.uv_triangles).reshape(-1).astype(np.int64)
    pairs = np.unique(tri * len(fine.uv) + uv_tri)
    pv, pu = pairs // len(fine.uv), pairs % len(fine.uv)
    samples = sample_map(d_map, fine.uv[pu])
    total = np.bincount(pv, weights=samples, minlength=len(fine.vertices))
    count = np.bincount(pv, minlength=len(fine.vertices))
    d_v = (total / np.maximum(count, 1)).astype(np.float32)
    displaced = fine.vertices + d_v[:, None] * normals
    mesh = MeshData(displaced.astype(np.float32), fine.triangles, fine.uv, fine.uv_triangles)
    return BakedMesh(mesh, fine.vertices, normals, d_v, levels)
