"""Exact camera-ray hits on a rendered (baked) mesh: which triangle, barycentrics, UV and camera-frame point lie
under a sub-pixel position of a photo (:meth:`fds.data.photo_render.RenderedPhoto.surface_at`).

Candidates per ray, in this order: the triangles seen at the 3×3 pixel centres nearest to the position (the
rasteriser's ``tri_id``, centre first, then rows −1, +1 × columns 0, −1, +1), then the 1-ring of the centre
pixel's triangle (the triangles around each of its three corners: triangles smaller than a pixel may cover no
pixel centre). Each candidate gets an exact Möller–Trumbore ray/triangle test (float64, camera at the origin);
the nearest hit wins, ties going to the candidate met first.

:func:`camera_ray_hits` tests each distinct candidate of a ray once, all rays at once (chunked);
:func:`camera_ray_hits_reference` is the plain loop over candidate slots it replaces. Both apply the same
arithmetic to the same (ray, triangle) pairs and break ties by the same order, so they return identical
arrays (``tests/data/test_surface_hits.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fds.mesh.bake import BakedMesh
from fds.render.camera import PinholeCamera

#: pixel offsets (row, column) of the 3×3 candidates, in test order
_NEIGHBOURS = tuple((dr, dc) for dr in (0, -1, 1) for dc in (0, -1, 1))


@dataclass
class SurfaceHits:
    """Camera-ray hits on a baked mesh: ``valid [N]``, ``triangle [N]`` (−1 = miss), ``bary [N, 3]`` weights of
    the triangle's corners, ``uv [N, 2]`` (image convention), ``point_cam [N, 3]`` (mm, camera frame)."""

    valid: np.ndarray
    triangle: np.ndarray
    bary: np.ndarray
    uv: np.ndarray
    point_cam: np.ndarray

    def vertex_attribute(self, values: np.ndarray, triangles: np.ndarray) -> np.ndarray:
        """Interpolate per-vertex ``values [V, C]`` (or ``[V]``) at the hits (0 where invalid)."""
        v = np.asarray(values, np.float64)
        flat = v.ndim == 1
        v = v[:, None] if flat else v
        corners = v[triangles[np.maximum(self.triangle, 0)]]  # [N, 3, C]
        out = np.einsum("nk,nkc->nc", self.bary, corners) * self.valid[:, None]
        return out[:, 0] if flat else out


def _pixel_candidates(tri_id: np.ndarray, row0: np.ndarray, col0: np.ndarray) -> np.ndarray:
    """``int64 [N, 9]``: the triangle seen at each of the 3×3 pixel centres around (``row0, col0 [N]``), −1 where
    none or outside the image."""
    h, w = tri_id.shape
    out = np.empty((len(row0), len(_NEIGHBOURS)), np.int64)
    for i, (dr, dc) in enumerate(_NEIGHBOURS):
        r, c = row0 + dr, col0 + dc
        inside = (r >= 0) & (r < h) & (c >= 0) & (c < w)
        out[:, i] = np.where(inside, tri_id[np.clip(r, 0, h - 1), np.clip(c, 0, w - 1)], -1)
    return out


def _compact(cand: np.ndarray) -> np.ndarray:
    """``cand [N, C]`` with the non-negative entries of each row moved left in their order, −1 padded to the
    longest row."""
    rows, cols = np.nonzero(cand >= 0)  # row-major: each row's entries in column order
    counts = np.bincount(rows, minlength=len(cand))
    out = np.full((len(cand), int(counts.max()) if len(cand) else 0), -1, np.int64)
    out[rows, np.arange(len(rows)) - np.repeat(np.cumsum(counts) - counts, counts)] = cand[rows, cols]
    return out


def _first_occurrences(cand: np.ndarray) -> np.ndarray:
    """``cand [N, C]`` without repeated entries in a row (the first is kept) or negatives, compacted (``_compact``)."""
    rows, cols = np.nonzero(cand >= 0)
    vals = cand[rows, cols]
    key = rows * (int(vals.max()) + 1 if len(vals) else 1) + vals
    _, first = np.unique(key, return_index=True)  # flat index of each distinct (row, value)'s first entry
    kept = np.full(cand.shape, -1, np.int64)
    kept[rows[first], cols[first]] = vals[first]
    return _compact(kept)


def _dot(a: tuple, b: tuple) -> np.ndarray:
    """Row-wise dot product of per-component arrays, summed as ``np.einsum("ij,ij->i")`` sums 3 terms on this
    numpy ((a0·b0 + a2·b2) + a1·b1, checked bit for bit by the tests)."""
    return (a[0] * b[0] + a[2] * b[2]) + a[1] * b[1]


@dataclass
class _TriangleTerms:
    """The ray-independent parts of :func:`moller_trumbore` per triangle (origin at 0), per component ``[T]``:
    e1 = c1 − c0, e2 = c2 − c0, tv = 0 − c0, q = tv × e1 and e2·q — computed with the same float64 operations
    as the per-ray function, so the results are bit-identical."""

    e1: tuple
    e2: tuple
    tv: tuple
    q: tuple
    e2q: np.ndarray

    @classmethod
    def of(cls, verts: np.ndarray, tri: np.ndarray) -> _TriangleTerms:
        c0, c1, c2 = ([np.ascontiguousarray(verts[tri[:, k], j]) for j in range(3)] for k in range(3))
        e1 = tuple(c1[j] - c0[j] for j in range(3))
        e2 = tuple(c2[j] - c0[j] for j in range(3))
        tv = tuple(0.0 - c0[j] for j in range(3))
        q = _cross(tv, e1)
        return cls(e1, e2, tv, q, _dot(e2, q))

    def intersect(self, d: tuple, tid: np.ndarray, eps: float = 1e-9):
        """(t, b1, b2, hit) of the rays ``d`` (components ``[N]``, from the origin) with triangles ``tid [N]``."""
        e1, e2, tv, q = (tuple(a[tid] for a in v) for v in (self.e1, self.e2, self.tv, self.q))
        p = _cross(d, e2)
        det = _dot(e1, p)
        with np.errstate(divide="ignore", invalid="ignore"):
            inv = 1.0 / np.where(np.abs(det) < eps, np.nan, det)
            b1 = _dot(tv, p) * inv
            b2 = _dot(d, q) * inv
            t = self.e2q[tid] * inv
        tol = 1e-7
        hit = np.isfinite(t) & (b1 >= -tol) & (b2 >= -tol) & (b1 + b2 <= 1 + tol) & (t > 0)
        return np.nan_to_num(t, nan=np.inf), np.nan_to_num(b1), np.nan_to_num(b2), hit


def _cross(a: tuple, b: tuple) -> tuple:
    """Cross product of per-component arrays, as ``np.cross`` computes it."""
    return (a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0])


def camera_ray_hits(camera: PinholeCamera, baked: BakedMesh, tri_id: np.ndarray, pixels: np.ndarray) -> SurfaceHits:
    """The surface of ``baked`` under sub-pixel positions ``pixels [N, 2]`` of the photo of ``camera`` whose
    per-pixel triangle ids are ``tri_id [H, W]`` (module doc). Candidates are gathered once per pixel (many
    texels of a UV map fall in one photo pixel), each distinct candidate is tested once per ray."""
    px = np.asarray(pixels, np.float64).reshape(-1, 2)
    n = len(px)
    verts_cam = camera.to_camera(baked.mesh.vertices)
    tri = baked.mesh.triangles.astype(np.int64)
    d = camera.ray_directions(px)  # [N, 3] from the origin
    best_t = np.full(n, np.inf)
    best_tri = np.full(n, -1, np.int64)
    best_b1, best_b2 = np.zeros(n), np.zeros(n)
    if n:
        col0, row0 = np.round(px[:, 0]).astype(np.int64), np.round(px[:, 1]).astype(np.int64)
        span = int(col0.max() - col0.min()) + 1
        key = (row0 - row0.min()) * span + (col0 - col0.min())
        _, first, inv = np.unique(key, return_index=True, return_inverse=True)
        cand = _candidates(tri, vertex_ring(tri, len(verts_cam)), tri_id, row0[first], col0[first])  # [P, C]
        terms = _TriangleTerms.of(verts_cam, tri)
        # rays by decreasing candidate count: slot c concerns a prefix of them
        count = (cand >= 0).sum(1)[inv]
        order = np.argsort(-count, kind="stable")
        inv_o, count_o = inv[order], count[order]
        d_o = tuple(np.ascontiguousarray(d[order, k]) for k in range(3))
        t_o, tri_o = best_t[order], best_tri[order]
        b1_o, b2_o = best_b1[order], best_b2[order]
        for c in range(cand.shape[1]):  # candidate slots in test order: strict < keeps the first of equal hits
            m = int(np.searchsorted(-count_o, -c, side="left"))  # rays with count > c
            tid = cand[inv_o[:m], c]
            t, b1, b2, hit = terms.intersect(tuple(a[:m] for a in d_o), tid)
            better = hit & (t < t_o[:m])
            t_o[:m] = np.where(better, t, t_o[:m])
            tri_o[:m] = np.where(better, tid, tri_o[:m])
            b1_o[:m] = np.where(better, b1, b1_o[:m])
            b2_o[:m] = np.where(better, b2, b2_o[:m])
        best_t[order], best_tri[order], best_b1[order], best_b2[order] = t_o, tri_o, b1_o, b2_o
    valid = best_tri >= 0
    bary = np.where(valid[:, None], np.stack([1 - best_b1 - best_b2, best_b1, best_b2], 1), 0.0)
    return _hits(baked, d, valid, best_tri, bary, best_t)


def _candidates(tri: np.ndarray, ring: np.ndarray, tri_id: np.ndarray, row0: np.ndarray,
                col0: np.ndarray) -> np.ndarray:
    """``int64 [P, C]`` the distinct candidate triangles (module doc) of the pixels (``row0, col0 [P]``), −1
    padded, in test order."""
    pix = _pixel_candidates(tri_id, row0, col0)  # [P, 9]
    for i in range(1, pix.shape[1]):  # a repeated pixel triangle was tested at its first slot
        pix[:, i][(pix[:, :i] == pix[:, i : i + 1]).any(1)] = -1
    centre = pix[:, 0]
    ok = centre >= 0
    if not ok.any():
        return _compact(pix)
    uniq, inv = np.unique(centre[ok], return_inverse=True)
    per_tri = _first_occurrences(ring[tri[uniq]].reshape(len(uniq), -1))  # [U, M] corner-major (k, j)
    rings = np.full((len(pix), per_tri.shape[1]), -1, np.int64)
    rings[ok] = per_tri[inv]
    for i in range(pix.shape[1]):  # a ring triangle among the pixel candidates was tested there first
        rings[(rings == pix[:, i : i + 1]) & (pix[:, i : i + 1] >= 0)] = -1
    return _compact(np.concatenate([pix, rings], axis=1))


def _hits(baked: BakedMesh, d: np.ndarray, valid: np.ndarray, best_tri: np.ndarray, best_b: np.ndarray,
          best_t: np.ndarray) -> SurfaceHits:
    assert baked.mesh.uv is not None and baked.mesh.uv_triangles is not None, "the baked head has UVs"
    uv_tri = baked.mesh.uv_triangles.astype(np.int64)
    uv = baked.mesh.uv.astype(np.float64)
    cuv = uv[uv_tri[np.maximum(best_tri, 0)]]  # [N, 3, 2]
    hit_uv = np.where(valid[:, None], np.einsum("nk,nkc->nc", best_b, cuv), np.nan)
    point = np.where(valid[:, None], d * np.where(valid, best_t, 0)[:, None], np.nan)
    return SurfaceHits(valid, best_tri, best_b, hit_uv, point)


def camera_ray_hits_reference(camera: PinholeCamera, baked: BakedMesh, tri_id: np.ndarray,
                              pixels: np.ndarray) -> SurfaceHits:
    """:func:`camera_ray_hits` as a plain loop over candidate slots (every slot tested, repeats included): the
    reference the fast path is checked against."""
    px = np.asarray(pixels, np.float64).reshape(-1, 2)
    n = len(px)
    verts_cam = camera.to_camera(baked.mesh.vertices)
    tri = baked.mesh.triangles.astype(np.int64)
    d = camera.ray_directions(px)
    best_t = np.full(n, np.inf)
    best_tri = np.full(n, -1, np.int64)
    best_b = np.zeros((n, 3))
    ring = vertex_ring(tri, len(verts_cam))

    def test(idx: np.ndarray, t_id: np.ndarray) -> None:
        t, b1, b2, hit = moller_trumbore(np.zeros((len(idx), 3)), d[idx], verts_cam[tri[t_id]])
        better = hit & (t < best_t[idx])
        k = idx[better]
        best_t[k], best_tri[k] = t[better], t_id[better]
        best_b[k] = np.stack([1 - b1[better] - b2[better], b1[better], b2[better]], 1)

    pix = _pixel_candidates(tri_id, np.round(px[:, 1]).astype(int), np.round(px[:, 0]).astype(int))
    for i in range(pix.shape[1]):
        idx = np.nonzero(pix[:, i] >= 0)[0]
        if len(idx):
            test(idx, pix[idx, i])
    centre_tri = pix[:, 0]
    for k in range(3):
        for j in range(ring.shape[1]):
            idx = np.nonzero(centre_tri >= 0)[0]
            cand = ring[tri[centre_tri[idx], k], j]
            ok = cand >= 0
            if ok.any():
                test(idx[ok], cand[ok])
    valid = best_tri >= 0
    return _hits(baked, d, valid, best_tri, best_b, best_t)


def vertex_ring(tri: np.ndarray, num_vertices: int) -> np.ndarray:
    """``[V, K]`` indices of the triangles around each vertex, −1 padded (K = the largest valence)."""
    corners = tri.reshape(-1)
    order = np.argsort(corners, kind="stable")
    owner = (order // 3)
    counts = np.bincount(corners, minlength=num_vertices)
    start = np.concatenate([[0], np.cumsum(counts)[:-1]])
    slot = np.arange(len(corners)) - np.repeat(start, counts)
    out = np.full((num_vertices, int(counts.max())), -1, np.int64)
    out[corners[order], slot] = owner
    return out


def moller_trumbore(origin: np.ndarray, direction: np.ndarray, corners: np.ndarray, eps: float = 1e-9):
    """Ray/triangle intersection: ``origin, direction [N, 3]``, ``corners [N, 3, 3]`` → (t, b1, b2, hit) with
    the point = (1 − b1 − b2)·c0 + b1·c1 + b2·c2 = origin + t·direction."""
    e1, e2 = corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]
    pvec = np.cross(direction, e2)
    det = np.einsum("ij,ij->i", e1, pvec)
    inv = 1.0 / np.where(np.abs(det) < eps, np.nan, det)
    tvec = origin - corners[:, 0]
    b1 = np.einsum("ij,ij->i", tvec, pvec) * inv
    qvec = np.cross(tvec, e1)
    b2 = np.einsum("ij,ij->i", direction, qvec) * inv
    t = np.einsum("ij,ij->i", e2, qvec) * inv
    tol = 1e-7
    hit = np.isfinite(t) & (b1 >= -tol) & (b2 >= -tol) & (b1 + b2 <= 1 + tol) & (t > 0)
    return np.nan_to_num(t, nan=np.inf), np.nan_to_num(b1), np.nan_to_num(b2), hit
