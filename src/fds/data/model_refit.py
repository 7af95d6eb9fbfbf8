"""The face model fitted in 3D to a scan's surface points: the smooth reference of a scan that brings no
displacement or normal map (``fds.data.raycast_gt``, mesh-only scans), and heights of the scan over it.

The model surface F(c) is the face model's mesh (``mean + Σ c_k basis_k``, piecewise linear, the same kind of
surface the synthetic heads' smooth part is); its displacement direction is the Phong-interpolated vertex
normal, as in ``fds.mesh.bake``. :func:`refit_model` is ICP with the model as the deformable surface: the
scan points go to the model frame by a similarity (Umeyama), each finds its closest point on F (k-d tree over
triangle centroids, exact point–triangle distance for the nearest candidates), and the coefficients solve the
linear least squares that bring those closest points onto the scan points along their normals (point-to-plane,
ridge prior, the worst 10 % of residuals dropped, a small correction of the similarity solved jointly), then
the similarity is refitted (Umeyama). Correspondences slide along the surface between iterations, so the photo
fit's tangential misregistration does not bend the shape. :func:`heights_over` then measures each point along
the Phong normal of its foot point (X = B(u) + h·n̂(u), solved by fixed-point steps from the closest point).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from fds.facemodel import FaceModel


@dataclass
class Feet:
    """Foot points of query points on a triangle mesh: ``triangle [N]``, ``bary [N, 3]`` (corner weights),
    ``point [N, 3]`` (on the flat triangle), ``normal [N, 3]`` (unit, Phong-interpolated), ``height [N]``
    (along ``normal``; + = the side the normals point to)."""

    triangle: np.ndarray
    bary: np.ndarray
    point: np.ndarray
    normal: np.ndarray
    height: np.ndarray


def closest_on_triangles(p: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Barycentric weights ``[N, 3]`` of the points of triangles (``a, b, c [N, 3]``) closest to ``p [N, 3]``
    (Ericson, *Real-Time Collision Detection* §5.1.5: vertex, edge and face regions)."""
    ab, ac, ap = b - a, c - a, p - a
    d1, d2 = (ab * ap).sum(1), (ac * ap).sum(1)
    bp, cp = p - b, p - c
    d3, d4 = (ab * bp).sum(1), (ac * bp).sum(1)
    d5, d6 = (ab * cp).sum(1), (ac * cp).sum(1)
    va, vb, vc = d3 * d6 - d5 * d4, d5 * d2 - d1 * d6, d1 * d4 - d3 * d2
    n = len(p)
    w = np.zeros((n, 3))
    done = np.zeros(n, bool)

    def put(cond, bary):
        nonlocal done
        sel = cond & ~done
        w[sel] = bary[sel] if bary.ndim == 2 else bary
        done |= sel

    one = np.ones(n)
    with np.errstate(divide="ignore", invalid="ignore"):
        put((d1 <= 0) & (d2 <= 0), np.array([1.0, 0, 0]))
        put((d3 >= 0) & (d4 <= d3), np.array([0, 1.0, 0]))
        put((d6 >= 0) & (d5 <= d6), np.array([0, 0, 1.0]))
        t = d1 / (d1 - d3)
        put((vc <= 0) & (d1 >= 0) & (d3 <= 0), np.stack([1 - t, t, 0 * one], 1))
        t = d2 / (d2 - d6)
        put((vb <= 0) & (d2 >= 0) & (d6 <= 0), np.stack([1 - t, 0 * one, t], 1))
        t = (d4 - d3) / ((d4 - d3) + (d5 - d6))
        put((va <= 0) & (d4 - d3 >= 0) & (d5 - d6 >= 0), np.stack([0 * one, 1 - t, t], 1))
        den = va + vb + vc
        v, u = vb / den, vc / den
        put(one > 0, np.stack([1 - v - u, v, u], 1))
    return np.nan_to_num(w, nan=1 / 3)


def vertex_normals_np(verts: np.ndarray, tri: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals ``[V, 3]`` (outward for counter-clockwise triangles)."""
    v = np.asarray(verts, np.float64)
    t = np.asarray(tri, np.int64)
    fn = np.cross(v[t[:, 1]] - v[t[:, 0]], v[t[:, 2]] - v[t[:, 0]])
    n = np.zeros_like(v)
    for k in range(3):
        np.add.at(n, t[:, k], fn)
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)


def heights_over(points: np.ndarray, verts: np.ndarray, tri: np.ndarray, normals: np.ndarray | None = None,
                 k: int = 12, steps: int = 2) -> Feet:
    """Feet of ``points [N, 3]`` on the mesh (``verts [V, 3]``, ``tri [T, 3]``, Phong ``normals [V, 3]``, default
    the area-weighted vertex normals): the closest point among the ``k`` triangles with the nearest centroids,
    then ``steps`` fixed-point steps towards X = B(u) + h·n̂(u) on that triangle (the height along the
    interpolated normal, as a displacement map defines it)."""
    p = np.asarray(points, np.float64)
    v = np.asarray(verts, np.float64)
    t = np.asarray(tri, np.int64)
    nv = vertex_normals_np(v, t) if normals is None else np.asarray(normals, np.float64)
    k = min(k, len(t))
    _, cand = cKDTree(v[t].mean(1)).query(p, k=k)  # [N, k]
    cand = cand.reshape(len(p), k)
    best_d = np.full(len(p), np.inf)
    best_t = np.zeros(len(p), np.int64)
    best_w = np.zeros((len(p), 3))
    for j in range(k):
        tj = t[cand[:, j]]
        w = closest_on_triangles(p, v[tj[:, 0]], v[tj[:, 1]], v[tj[:, 2]])
        q = np.einsum("nk,nkd->nd", w, v[tj])
        d = np.linalg.norm(p - q, axis=1)
        better = d < best_d
        best_d[better], best_t[better], best_w[better] = d[better], cand[better, j], w[better]
    corners = v[t[best_t]]  # [N, 3, 3]
    ncorner = nv[t[best_t]]
    w = best_w
    for _ in range(steps + 1):
        b = np.einsum("nk,nkd->nd", w, corners)
        n = np.einsum("nk,nkd->nd", w, ncorner)
        n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
        h = ((p - b) * n).sum(1)
        if _ == steps:
            break
        w = _plane_barycentrics(p - h[:, None] * n, corners)  # the base point under X along n̂, same triangle
    return Feet(best_t, w, b, n, h)


def _plane_barycentrics(p: np.ndarray, corners: np.ndarray) -> np.ndarray:
    """Barycentric weights ``[N, 3]`` of the orthogonal projections of ``p [N, 3]`` on the planes of the
    triangles ``corners [N, 3, 3]`` (may lie outside the triangle)."""
    a, e1, e2 = corners[:, 0], corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]
    r = p - a
    g11, g12, g22 = (e1 * e1).sum(1), (e1 * e2).sum(1), (e2 * e2).sum(1)
    r1, r2 = (r * e1).sum(1), (r * e2).sum(1)
    det = np.maximum(g11 * g22 - g12**2, 1e-18)
    u = (g22 * r1 - g12 * r2) / det
    w2 = (g11 * r2 - g12 * r1) / det
    return np.stack([1 - u - w2, u, w2], 1)


def _rotation(omega: np.ndarray) -> np.ndarray:
    """Rotation matrix exp([ω]×) (Rodrigues)."""
    angle = float(np.linalg.norm(omega))
    if angle < 1e-15:
        return np.eye(3)
    k = omega / angle
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(angle) * kx + (1 - np.cos(angle)) * kx @ kx


def refit_model(fm: FaceModel, points_cam: np.ndarray, weights: np.ndarray, coef0: np.ndarray,
                pose0: tuple[float, np.ndarray, np.ndarray], iterations: int = 40, prior: float = 1e-6,
                pose_first: int = 3, tol: float = 0.002,
                max_points: int = 30_000) -> tuple[np.ndarray, tuple[float, np.ndarray, np.ndarray], dict]:
    """ICP of the face model onto ``points_cam [N, 3]`` (module doc), from coefficients ``coef0`` (identity in
    standard deviations, then expression as ``fm.vertices`` takes them) and the similarity ``pose0 = (s, R, t)``
    (model → camera frame). Fits on ≤ ``max_points`` of the points (a regular subsample); ``prior`` mm² per
    squared coefficient unit. Returns (model vertices ``[V, 3]`` mm, model frame; the similarity; a summary with
    the RMS point–surface distance before/after, mm)."""
    k_id, k_ex = fm.num_identity, fm.num_expression
    id_b = fm.id_basis.astype(np.float64) * np.sqrt(fm.id_variance.astype(np.float64))[:, None, None]
    ex_b = fm.expr_basis.astype(np.float64)
    if fm.expr_kind == "pca" and fm.expr_variance is not None:
        ex_b = ex_b * np.sqrt(fm.expr_variance.astype(np.float64))[:, None, None]
    basis = np.concatenate([id_b, ex_b]).transpose(1, 2, 0)  # [V, 3, C] per unit coefficient
    mean = fm.mean_mm.astype(np.float64)
    tri = fm.triangles.astype(np.int64)
    sub = np.arange(0, len(points_cam), max(1, int(np.ceil(len(points_cam) / max_points))))
    x = np.asarray(points_cam, np.float64)[sub]
    w = np.asarray(weights, np.float64)[sub]
    coef = np.zeros(k_id + k_ex)
    coef[: min(len(coef0), len(coef))] = np.asarray(coef0, np.float64)[: len(coef)]
    s, rot, t = pose0
    rms = []
    for it in range(iterations + 1):
        verts = mean + basis @ coef
        y = (x - t) @ rot / s  # the points in the model frame
        feet = heights_over(y, verts, tri)
        res = np.abs(feet.height) * s
        keep = res <= max(4 * float(np.median(res)), 0.05)  # gross outliers only: points off the model
        rms.append(float(np.sqrt(np.average(res[keep] ** 2, weights=w[keep]))))
        if it == iterations or (len(rms) > 2 and rms[-3] - rms[-1] < 2 * tol * rms[-1]):
            break
        wk = w[keep] / w[keep].sum()
        corners = tri[feet.triangle[keep]]  # [m, 3]
        bk, nk = feet.bary[keep], feet.normal[keep]
        a = sum(bk[:, j, None, None] * basis[corners[:, j]] for j in range(3))  # [m, 3, C]
        m0 = np.einsum("mj,mjd->md", bk, mean[corners])
        p = m0 + a @ coef
        # point-to-plane, in increments: n·(A (c + Δc) + m + ω×p + τ + σp − y) = 0, the pose terms a small
        # correction of the model frame; the first ``pose_first`` iterations move the pose alone
        pose_rows = np.concatenate([np.cross(p, nk), nk, (nk * p).sum(1, keepdims=True)], 1)  # [m, 7]
        target = (nk * (y[keep] - p)).sum(1)
        shape = it >= pose_first
        rows = np.concatenate([np.einsum("md,mdc->mc", nk, a), pose_rows], 1) if shape else pose_rows
        lhs = (rows * wk[:, None]).T @ rows
        rhs = (rows * wk[:, None]).T @ target
        if shape:
            lhs[: len(coef), : len(coef)] += prior * np.eye(len(coef))
            rhs[: len(coef)] -= prior * coef
        sol = np.linalg.solve(lhs, rhs)
        if shape:
            coef = coef + sol[: len(coef)]
            sol = sol[len(coef) :]
        # the model-frame correction p ↦ (1 + σ)·exp([ω]×)·p + τ moves into the similarity (model → camera)
        omega, tau, sigma = sol[:3], sol[3:6], float(sol[6])
        t = t + s * rot @ tau
        rot = rot @ _rotation(omega)
        s = s * (1 + sigma)
    verts = fm.vertices(coef[:k_id].astype(np.float32), coef[k_id:].astype(np.float32)).astype(np.float64)
    return verts, (s, rot, t), {"rms_mm_start": round(rms[0], 4), "rms_mm_refit": round(rms[-1], 4),
                                "points": int(len(x)), "iterations": len(rms) - 1}
