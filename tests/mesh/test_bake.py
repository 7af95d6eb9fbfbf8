"""Baking: subdivision keeps the proxy and its UV seams, displacement moves vertices along the normals."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fds.mesh.bake import bake_displacement, sample_map, subdivide, subdivision_levels
from fds.mesh.meshdata import MeshData
from fds.render import vertex_normals


def edge_count(tri: np.ndarray) -> int:
    e = np.sort(np.concatenate([tri[:, [0, 1]], tri[:, [1, 2]], tri[:, [2, 0]]]), axis=1)
    return len(np.unique(e, axis=0))


def test_subdivision_counts_and_exact_surface(proxy):
    fine, _ = subdivide(proxy, 2)
    v, t, e = len(proxy.vertices), len(proxy.triangles), edge_count(proxy.triangles)
    once, _ = subdivide(proxy, 1)
    assert len(once.triangles) == 4 * t and len(once.vertices) == v + e  # one new vertex per edge
    assert len(fine.triangles) == 16 * t
    np.testing.assert_array_equal(fine.vertices[:v], proxy.vertices)
    # every level-1 vertex is the midpoint of a proxy edge: it lies on the proxy surface
    tri = proxy.triangles
    mids = {tuple(np.round((proxy.vertices[a] + proxy.vertices[b]) / 2, 4)) for a, b in
            np.concatenate([tri[:, [0, 1]], tri[:, [1, 2]], tri[:, [2, 0]]])}
    assert all(tuple(p) in mids for p in np.round(once.vertices[v:], 4))
    # orientation is kept: the area-weighted normals agree with the proxy's at the original vertices
    n0 = vertex_normals(torch.from_numpy(proxy.vertices), torch.from_numpy(proxy.triangles.astype(np.int64)))
    n2 = vertex_normals(torch.from_numpy(fine.vertices), torch.from_numpy(fine.triangles.astype(np.int64)))
    assert (n0 * n2[:v]).sum(-1).mean() > 0.99


def test_seams_stay_consistent(ict_proxy):
    fine, _ = subdivide(ict_proxy, 1)
    assert len(ict_proxy.uv) > len(ict_proxy.vertices)  # ICT has UV seams
    # for every corner, the UV is the same linear combination as the position: check via midpoints
    c_pos = fine.vertices[fine.triangles]  # [T, 3, 3]
    c_uv = fine.uv[fine.uv_triangles]
    parent_pos = ict_proxy.vertices[ict_proxy.triangles]
    parent_uv = ict_proxy.uv[ict_proxy.uv_triangles]
    # child 0 of parent k is (a, ab, ca): its second corner is the midpoint of a-b in both spaces
    np.testing.assert_allclose(c_pos[0::4, 1], (parent_pos[:, 0] + parent_pos[:, 1]) / 2, atol=1e-4)
    np.testing.assert_allclose(c_uv[0::4, 1], (parent_uv[:, 0] + parent_uv[:, 1]) / 2, atol=1e-6)
    np.testing.assert_allclose(c_uv[3::4, 2], (parent_uv[:, 2] + parent_uv[:, 0]) / 2, atol=1e-6)
    # the number of distinct UVs grows by one per distinct UV edge, which is more than per 3D edge on seams
    assert len(fine.uv) - len(ict_proxy.uv) == edge_count(ict_proxy.uv_triangles)
    assert edge_count(ict_proxy.uv_triangles) > edge_count(ict_proxy.triangles)


def test_levels_follow_the_texel_pitch(proxy):
    lo = subdivision_levels(proxy, 256)
    hi = subdivision_levels(proxy, 1024, max_triangles=10**9)
    assert hi == lo + 2
    assert subdivision_levels(proxy, 4096, max_triangles=2_000_000) == 4  # capped: 6,736 · 4⁴ ≤ 2M < 6,736 · 4⁵
    assert subdivision_levels(proxy, 4096, max_triangles=500_000) == 3  # 6,736 · 4³ ≤ 500k < 6,736 · 4⁴
    assert subdivision_levels(proxy, 4096, max_triangles=len(proxy.triangles)) == 0


def test_zero_map_gives_the_subdivided_proxy(proxy):
    baked = bake_displacement(proxy, np.zeros((64, 64), np.float32), levels=1)
    fine, _ = subdivide(proxy, 1)
    np.testing.assert_array_equal(baked.mesh.vertices, fine.vertices)
    np.testing.assert_array_equal(baked.base_vertices, fine.vertices)
    assert (baked.displacement_mm == 0).all() and baked.levels == 1


def test_constant_map_moves_every_vertex_by_c_along_its_normal(proxy, ict_proxy):
    c = 0.75
    for mesh in (proxy, ict_proxy):
        baked = bake_displacement(mesh, np.full((64, 64), c, np.float32), levels=1)
        step = baked.mesh.vertices - baked.base_vertices
        np.testing.assert_allclose(np.linalg.norm(step, axis=1), c, atol=1e-4)
        np.testing.assert_allclose(step, c * baked.normals, atol=1e-4)
        # original vertices move along the proxy's own vertex normals
        n0 = vertex_normals(torch.from_numpy(mesh.vertices), torch.from_numpy(mesh.triangles.astype(np.int64)))
        v = len(mesh.vertices)
        np.testing.assert_allclose(step[:v], c * n0.numpy(), atol=1e-4)


def test_displacement_follows_the_map(proxy):
    r = 64
    d = np.zeros((r, r), np.float32)
    d[:, r // 2 :] = 1.0  # right half of the chart raised by 1 mm
    baked = bake_displacement(proxy, d, levels=1)
    u = np.zeros(len(baked.mesh.vertices))
    u[baked.mesh.triangles.reshape(-1)] = baked.mesh.uv[baked.mesh.uv_triangles.reshape(-1), 0]
    assert np.allclose(baked.displacement_mm[u > 0.52], 1.0) and np.allclose(baked.displacement_mm[u < 0.48], 0.0)
    np.testing.assert_allclose(sample_map(d, np.array([[0.25, 0.5], [0.75, 0.5], [0.5, 0.5]])), [0, 1, 0.5])


def test_bad_input(proxy):
    with pytest.raises(ValueError, match="UVs"):
        bake_displacement(MeshData(proxy.vertices, proxy.triangles), np.zeros((8, 8)))
    with pytest.raises(ValueError, match="NaN"):
        bake_displacement(proxy, np.full((8, 8), np.nan))
    with pytest.raises(ValueError, match="levels"):
        subdivide(proxy, -1)
