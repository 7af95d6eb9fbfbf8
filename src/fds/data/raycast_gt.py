"""GT detail in the *fitted* proxy's UV chart: register the proxy to the GT head through the photo, measure the
detailed surface along the proxy's normals, keep the detail band (paper §3: scans registered to the proxy fitted
to a photo of the same face, displacement = detailed − smooth along the normal).

For every texel τ of the fitted chart (``R × R``, image convention) that the unwrap saw:

1. **what the texel shows**: the fitted proxy point P(τ) projects (the fit's scaled-orthographic camera) to the
   photo pixel p(τ) where the unwrap took its colour; the camera ray through p(τ) hits the GT detailed surface at
   X(τ) (exact ray/triangle intersection on the rendered mesh, :meth:`RenderedPhoto.surface_at`). Relief finer
   than the rendered mesh (carried by normal mapping) is added back along the GT smooth normal, so X(τ) lies on
   the full-resolution detailed surface: X = X_mesh + (d_map(u) − d_mesh(u))·n_smooth(u);
2. **registration**: the similarity T (scale, rotation, translation; Umeyama, weighted by the unwrap confidence,
   refitted once without the worst 10 %) that best maps P(τ) onto X(τ) — the proxy registered to the GT by the
   photo's own pixel correspondences, as a scan would be registered to the proxy fitted to its photo;
3. **ray cast**: the height h(τ) = ⟨X(τ) − T P(τ), N(τ)⟩ of the detailed point along the registered proxy normal
   N(τ) = R_T n_proxy(τ) — the distance a ray from the registered proxy along its normal travels to the plane of
   the surface point the texel shows. Using the point the *texel shows* (rather than where the normal ray from
   T P(τ) lands, which lies g·tanθ away for a proxy depth error g and a view tilt θ) keeps the GT registered to the
   texture wherever the proxy's depth is off; that offset is reported as ``tangential_offset_mm``;
4. **detail band**: D(τ) = h(τ) − G_σ[h](τ), a masked (normalised) Gaussian low-pass in the fitted UV with σ in
   mm (``band_sigma_mm``, default 4 mm): the proxy's shape error and the registration residual vary over ≥ 1 cm
   and are removed; wrinkles (half-widths ≤ 2.5 mm) stay (a Gaussian groove of half-width w keeps a fraction
   ≈ 1 − w/√(w² + 2σ²) of its depth: 84 % for w = 0.9 mm, 60 % for the widest nasolabial folds).

**Mesh-only scans** (no displacement or normal map, ``detail_map_mm=None``): the smooth surface under X(τ) is
unknown, so the face model is refitted in 3D to the points X(τ) (``fds.data.model_refit``: ICP with the model's
identity/expression coefficients and a similarity, from the photo fit) and each X(τ) is measured like a
displacement map: its height over the refit along the refit's interpolated normal at its foot point, divided by
that normal's cosine with N(τ). Heights over the photo fit itself keep its depth and shape error, which varies
inside the band (RMS 0.29 mm against a 0.05 mm relief on a synthetic head).

Texels get GT (``mask``) where the unwrap saw them, the camera ray hits the GT face, and the GT surface does not
face away from the proxy normal (cos > 0.3, where "height along the normal" stops meaning anything).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage

from fds.facemodel import FaceModel
from fds.facemodel.uvchart import uv_chart
from fds.render import vertex_normals


@dataclass
class FittedGT:
    """GT of one photo in the fitted proxy's UV chart (all maps ``[R, R]``, row 0 = v 0)."""

    displacement_mm: np.ndarray  # float32 detail band D, mm, + = outward along the proxy normal (0 off mask)
    height_mm: np.ndarray  # float32 raw height h before the band-pass (0 off mask)
    mask: np.ndarray  # bool: texel carries GT
    gt_uv: np.ndarray  # float32 [R, R, 2] GT-head UV of the surface point each texel shows (NaN off mask)
    position_mm: np.ndarray  # float32 [R, R, 3] fitted proxy surface, model frame
    normal: np.ndarray  # float32 [R, R, 3] fitted proxy unit normals, model frame
    texel_mm: tuple[float, float]  # median texel size (u, v) on the fitted proxy
    stats: dict  # registration (scale, residual) and tangential offsets, mm


def umeyama(src: np.ndarray, dst: np.ndarray, weights: np.ndarray | None = None
            ) -> tuple[float, np.ndarray, np.ndarray]:
    """Similarity (s, R, t) minimising Σ w‖s R src + t − dst‖² (Umeyama 1991); ``src, dst [N, 3]``."""
    w = np.ones(len(src)) if weights is None else np.asarray(weights, np.float64)
    w = w / w.sum()
    mu_s, mu_d = w @ src, w @ dst
    a, b = src - mu_s, dst - mu_d
    cov = (b * w[:, None]).T @ a
    u, sig, vt = np.linalg.svd(cov)
    d = np.eye(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[2, 2] = -1
    rot = u @ d @ vt
    var_s = float(w @ (a**2).sum(1))
    s = float(np.trace(np.diag(sig) @ d) / max(var_s, 1e-12))
    return s, rot, mu_d - s * rot @ mu_s


def masked_lowpass(values: np.ndarray, mask: np.ndarray, sigma_px: tuple[float, float]) -> np.ndarray:
    """Normalised Gaussian low-pass of ``values [R, R]`` over ``mask`` (σ per axis: rows, cols, in texels)."""
    m = mask.astype(np.float64)
    num = ndimage.gaussian_filter(np.where(mask, values, 0.0), sigma_px, mode="constant")
    den = ndimage.gaussian_filter(m, sigma_px, mode="constant")
    return np.where(mask, num / np.maximum(den, 1e-9), 0.0)


def proxy_maps(fm: FaceModel, vertices_mm: np.ndarray, resolution: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fitted proxy ``position_mm [R,R,3]``, unit ``normal [R,R,3]`` (model frame, outward) and ``covered [R,R]``."""
    chart = uv_chart(fm, resolution)
    v = torch.from_numpy(np.asarray(vertices_mm, np.float32))
    n = vertex_normals(v, torch.from_numpy(fm.triangles.astype(np.int64))).numpy()
    if float(n[:, 2].mean()) < 0:  # clockwise winding: make the normals face the viewer of a frontal face
        n = -n
    pos = chart.interpolate(np.asarray(vertices_mm, np.float32))
    nrm = chart.interpolate(n)
    nrm /= np.maximum(np.linalg.norm(nrm, axis=-1, keepdims=True), 1e-12)
    return pos, nrm.astype(np.float32), chart.covered


def texture_aligned_points(photo, proxy, fm: FaceModel, resolution: int, detail_map_mm: np.ndarray | None = None,
                           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                      np.ndarray]:
    """Step 1 of the module doc: (position_mm, normal, seen [R,R] bool, X [R,R,3] camera frame, gt uv [R,R,2],
    cos [R,R] of the GT smooth normal with the view-independent proxy normal is left to the caller).

    ``proxy`` is a :class:`fds.proxy.ProxyResult`; ``detail_map_mm [Rg, Rg]`` the GT displacement map whose
    detail finer than the rendered mesh is added back along the smooth normal (None: the mesh is the surface).
    """
    pos, nrm, covered = proxy_maps(fm, proxy.fit.vertices_mm, resolution)
    conf = np.asarray(proxy.uv.confidence, np.float32)
    if conf.shape != covered.shape:
        conf = np.asarray(torch.nn.functional.interpolate(torch.from_numpy(conf)[None, None], size=covered.shape,
                                                          mode="nearest")[0, 0])
    want = covered & (conf > 0)
    px = proxy.fit.project(pos[want])
    hits = photo.surface_at(px)
    x_cam = hits.point_cam.astype(np.float64)
    baked = photo.baked
    n_s = hits.vertex_attribute(baked.normals, baked.mesh.triangles)
    n_s /= np.maximum(np.linalg.norm(n_s, axis=1, keepdims=True), 1e-12)
    n_s_cam = n_s @ photo.camera.rotation.T
    if detail_map_mm is not None:
        from fds.mesh.bake import sample_map

        d_full = sample_map(detail_map_mm, np.nan_to_num(hits.uv))
        d_mesh = hits.vertex_attribute(baked.displacement_mm, baked.mesh.triangles)
        x_cam = x_cam + ((d_full - d_mesh) * hits.valid)[:, None] * n_s_cam
    r = resolution
    seen = np.zeros((r, r), bool)
    seen[want] = hits.valid
    x_map = np.full((r, r, 3), np.nan)
    x_map[want] = x_cam
    uv_map = np.full((r, r, 2), np.nan, np.float32)
    uv_map[want] = hits.uv
    ns_map = np.zeros((r, r, 3))
    ns_map[want] = n_s_cam
    d_map = np.zeros((r, r))
    if detail_map_mm is not None:
        d_map[want] = d_full * hits.valid
    return pos, nrm, seen, x_map, uv_map, ns_map, d_map


def _heights_over_refit(fm: FaceModel, proxy, x_map: np.ndarray, mask: np.ndarray, weights: np.ndarray,
                        n_reg: np.ndarray, pose: tuple, min_cos: float) -> tuple[np.ndarray, dict]:
    """Mesh-only scans (module doc): ``h [R, R]`` over the face model refitted to the points ``x_map`` (camera
    frame) of the ``mask`` texels, measured like a displacement map (along the refit's interpolated normal at
    the foot point, divided by its cosine with the registered proxy normal ``n_reg``)."""
    from fds.data.model_refit import heights_over, refit_model

    coef0 = np.concatenate([np.asarray(proxy.fit.id_coeffs, np.float64), np.asarray(proxy.fit.expr_coeffs, np.float64)])
    verts, (s, rot, t), summary = refit_model(fm, x_map[mask], weights[mask], coef0, pose)
    feet = heights_over((x_map[mask] - t) @ rot / s, verts, fm.triangles)
    n_cam = feet.normal @ rot.T
    cos = (n_cam * n_reg[mask]).sum(1)
    sign = 1.0 if float(np.median(cos)) >= 0 else -1.0  # the model's winding may point its normals inward
    h = np.zeros(mask.shape)
    h[mask] = sign * s * feet.height / np.maximum(sign * cos, min_cos)
    return h, summary


def fitted_gt(photo, proxy, fm: FaceModel, resolution: int, detail_map_mm: np.ndarray | None = None,
              band_sigma_mm: float = 4.0, min_cos: float = 0.3) -> FittedGT:
    """The GT of the module doc for a :class:`fds.data.photo_render.RenderedPhoto` and its ``ProxyResult``."""
    if band_sigma_mm <= 0:
        raise ValueError(f"band_sigma_mm must be a positive low-pass width in mm, got {band_sigma_mm}")
    pos, nrm, seen, x_map, uv_map, ns_map, d_map = texture_aligned_points(photo, proxy, fm, resolution,
                                                                          detail_map_mm)
    conf = np.asarray(proxy.uv.confidence, np.float32)
    if conf.shape != seen.shape:
        conf = np.ones_like(seen, np.float32)
    src, dst, w = pos[seen].astype(np.float64), x_map[seen], np.maximum(conf[seen], 0.05)
    if len(src) < 100:
        raise ValueError(f"only {len(src)} fitted texels see the GT face: no registration possible")
    s, rot, t = umeyama(src, dst, w)
    res = np.linalg.norm(s * src @ rot.T + t - dst, axis=1)
    keep = res <= np.quantile(res, 0.9)
    s, rot, t = umeyama(src[keep], dst[keep], w[keep])
    reg = s * pos.astype(np.float64) @ rot.T + t  # [R, R, 3] registered proxy, camera frame
    n_reg = nrm.astype(np.float64) @ rot.T
    off = np.where(seen[..., None], x_map - reg, 0.0)
    cos = (ns_map * n_reg).sum(-1)
    mask = seen & (cos > min_cos)
    refit: dict = {}
    if detail_map_mm is not None:  # the GT smooth surface is known: the ray starts on it
        h = np.where(mask, d_map / np.maximum(cos, min_cos), 0.0)
    else:  # a mesh-only scan: heights over the face model refitted to the points the texels show
        h, refit = _heights_over_refit(fm, proxy, x_map, mask, np.maximum(conf, 0.05), n_reg, (s, rot, t), min_cos)
    chart = uv_chart(fm, resolution)
    du, dv = chart.texel_mm(pos)
    low = masked_lowpass(h, mask, (band_sigma_mm / dv, band_sigma_mm / du))
    band = np.where(mask, h - low, 0.0)
    along = (off * n_reg).sum(-1, keepdims=True)
    tangential = np.linalg.norm(off - along * n_reg, axis=-1)[mask]
    residual = np.linalg.norm(off, axis=-1)[mask]
    stats = {"scale": round(s, 5), "texels": int(mask.sum()),
             "registration_residual_mm": {"median": round(float(np.median(residual)), 3),
                                          "p90": round(float(np.quantile(residual, 0.9)), 3)},
             "tangential_offset_mm": {"median": round(float(np.median(tangential)), 3),
                                      "p90": round(float(np.quantile(tangential, 0.9)), 3)},
             "band_sigma_mm": band_sigma_mm, "band_rms_mm": round(float(np.sqrt(np.mean(band[mask] ** 2))), 4),
             **({"refit": refit} if refit else {})}
    return FittedGT(band.astype(np.float32), np.where(mask, h, 0).astype(np.float32), mask,
                    np.where(mask[..., None], uv_map, np.nan).astype(np.float32), pos.astype(np.float32),
                    nrm.astype(np.float32), (du, dv), stats)
