"""Normal maps of a displacement map over the proxy's UV chart: tangent space and object space.

Conventions are :mod:`fds.render.normals`'s: maps ``[R, R, 3]`` (row 0 = v 0), tangent frame T = +u, B = up
the map, N = outward; object space is the face model's frame (mm; x right, y up, z to the viewer).

Slopes are metric: the displacement (mm) is differentiated per texel and divided by each texel's size on the
proxy surface (mm), taken from the UV → 3D Jacobian of every proxy triangle, averaged to the vertices and
interpolated (so it varies smoothly across triangle edges). Per-texel attributes (frames, texel sizes) are
rasterised at ≤ ``work_resolution`` and upsampled bilinearly with coverage normalisation, which keeps the
4096² case cheap on CPU; they are smooth vertex interpolants, so nothing visible is lost.

:func:`normal_maps` is the fast path (the chart's rasterisation cached per UV layout, integer-factor bilinear
upsampling, one pass over each band of rows); :func:`normal_maps_reference` is the plain version it is tested
against.
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from fds.render import (
    interpolate,
    normals_from_displacement,
    rasterize_uv,
    tangent_frames,
    tangent_to_object,
    texture,
)


@dataclass
class NormalMaps:
    """Normal maps of one displacement map (float32, unit vectors inside ``coverage``)."""

    tangent: np.ndarray  # [R, R, 3] tangent space; (0, 0, 1) outside coverage
    object: np.ndarray  # [R, R, 3] model frame; 0 outside coverage
    texel_mm: np.ndarray  # [R, R, 2] mm per texel along columns (u) and rows (v); 0 outside the chart
    coverage: np.ndarray  # [R, R] bool


def uv_vertex_index(triangles: np.ndarray, uv_triangles: np.ndarray, num_uv: int) -> np.ndarray:
    """``int64 [U]``: the vertex each UV belongs to (−1 for unused UVs)."""
    out = np.full(num_uv, -1, np.int64)
    out[np.asarray(uv_triangles).reshape(-1)] = np.asarray(triangles).reshape(-1)
    return out


def vertex_texel_scale(vertices: np.ndarray, triangles: np.ndarray, uv: np.ndarray, uv_triangles: np.ndarray):
    """mm per UV unit along u and along v at each vertex, ``float64 [V, 2]`` (area-weighted triangle means).

    For a triangle the map uv → 3D is affine, P = P0 + J·(uv − uv0); |J[:, 0]| and |J[:, 1]| are the lengths
    of ∂P/∂u and ∂P/∂v. Triangles with a degenerate UV footprint are skipped.
    """
    v = np.asarray(vertices, np.float64)
    t = np.asarray(triangles, np.int64)
    tc = np.asarray(uv, np.float64)[np.asarray(uv_triangles, np.int64)]  # [T, 3, 2]
    p = v[t]  # [T, 3, 3]
    e = np.stack([p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]], axis=2)  # [T, 3, 2]
    d = np.stack([tc[:, 1] - tc[:, 0], tc[:, 2] - tc[:, 0]], axis=2)  # [T, 2, 2] columns = uv edges
    det = d[:, 0, 0] * d[:, 1, 1] - d[:, 0, 1] * d[:, 1, 0]
    ok = np.abs(det) > 1e-12
    inv = np.zeros_like(d)
    inv[ok] = np.linalg.inv(d[ok])
    jac = e @ inv  # [T, 3, 2]: ∂P/∂u, ∂P/∂v
    scale = np.linalg.norm(jac, axis=1)  # [T, 2]
    area = 0.5 * np.linalg.norm(np.cross(e[:, :, 0], e[:, :, 1]), axis=1) * ok
    acc = np.zeros((len(v), 2))
    wsum = np.zeros(len(v))
    for k in range(3):
        np.add.at(acc, t[:, k], scale * area[:, None])
        np.add.at(wsum, t[:, k], area)
    return acc / np.maximum(wsum, 1e-30)[:, None]


def chart_attributes(
    attr_per_uv: torch.Tensor, uv: torch.Tensor, uv_tri: torch.Tensor, work_resolution: int
) -> torch.Tensor:
    """Per-UV attributes ``[U, C]`` over the chart at ``work_resolution`` W → ``[1, W, W, C + 1]``: the
    attributes premultiplied by coverage, then the coverage (1 inside the chart) as the last channel."""
    w = int(work_resolution)
    rast = rasterize_uv(uv, uv_tri, (w, w), backend="torch")
    cov = (rast[..., 3:4] > 0).to(attr_per_uv.dtype)  # [1, w, w, 1]
    return torch.cat([interpolate(attr_per_uv, rast, uv_tri) * cov, cov], dim=-1)


def sample_band(low: torch.Tensor, rows: slice, resolution: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Bilinear upsampling of :func:`chart_attributes` to texel centres of ``rows`` of an R×R map, normalised
    by the upsampled coverage (rim texels are not darkened by the empty outside) → (``[1, C, h, R]``, covered
    ``bool [h, R]`` where the coverage is ≥ ½)."""
    r_ = int(resolution)
    u = (torch.arange(r_, dtype=low.dtype) + 0.5) / r_
    v = (torch.arange(rows.start, rows.stop, dtype=low.dtype) + 0.5) / r_
    grid = torch.stack(torch.meshgrid(u, v, indexing="xy"), dim=-1)[None]  # [1, h, R, 2] (u, v)
    band = texture(low, grid)[0].permute(2, 0, 1)[None]  # [1, C + 1, h, R]
    cov = band[:, -1:]
    return band[:, :-1] / cov.clamp_min(1e-6), cov[0, 0] >= 0.5


def normal_maps_reference(
    displacement_mm: np.ndarray,
    vertices: np.ndarray,
    triangles: np.ndarray,
    uv: np.ndarray,
    uv_triangles: np.ndarray,
    coverage: np.ndarray | None = None,
    work_resolution: int = 1024,
    band_rows: int = 512,
) -> NormalMaps:
    """The plain implementation of :func:`normal_maps` (the fast path's reference in tests and the benchmark):
    rasterises the chart on every call and samples the frames with ``texture`` (``grid_sample``) band by band.

    ``vertices [V, 3]`` mm (the fitted proxy, model frame), ``triangles [T, 3]``, ``uv [U, 2]`` image convention,
    ``uv_triangles [T, 3]``; ``coverage`` (``bool [R, R]``, default the chart) limits where normals are written.
    """
    d = np.asarray(displacement_mm, np.float32)
    if d.ndim != 2 or d.shape[0] != d.shape[1]:
        raise ValueError(f"displacement_mm must be a square [R, R] map in mm, got shape {d.shape}")
    r_ = d.shape[0]
    verts = torch.from_numpy(np.asarray(vertices, np.float32))
    tri = torch.from_numpy(np.asarray(triangles, np.int64))
    uv_t = torch.from_numpy(np.asarray(uv, np.float32))
    uv_tri = torch.from_numpy(np.asarray(uv_triangles, np.int64))
    owner = uv_vertex_index(triangles, uv_triangles, len(uv)).clip(0)
    user_cov = None if coverage is None else torch.from_numpy(np.asarray(coverage, bool))
    if user_cov is not None and tuple(user_cov.shape) != (r_, r_):
        raise ValueError(f"coverage must be bool [{r_}, {r_}] like the map, got {tuple(user_cov.shape)}")
    tangent = np.zeros((r_, r_, 3), np.float32)
    obj = np.zeros((r_, r_, 3), np.float32)
    texel = np.zeros((r_, r_, 2), np.float32)
    covered = np.zeros((r_, r_), bool)
    with torch.no_grad():
        t_vec, b_vec, n_vec = tangent_frames(verts, uv_t, tri, uv_tri)  # [V, 3] each
        scale = torch.from_numpy(vertex_texel_scale(vertices, triangles, uv, uv_triangles)).float() / r_  # mm/texel
        per_uv = torch.cat([t_vec, b_vec, n_vec, scale], dim=1)[torch.from_numpy(owner)]  # [U, 11]
        low = chart_attributes(per_uv, uv_t, uv_tri.int(), min(r_, int(work_resolution)))
        n1 = normals_from_displacement(torch.from_numpy(d)[None, None], 1.0)  # [1, 3, R, R], slopes per texel
        flat = torch.tensor([0.0, 0.0, 1.0]).view(1, 3, 1, 1)
        for r0 in range(0, r_, band_rows):
            rows = slice(r0, min(r_, r0 + band_rows))
            attrs, chart = sample_band(low, rows, r_)  # [1, 11, h, R], [h, R]
            cov = chart if user_cov is None else chart & user_cov[rows]
            du, dv = attrs[:, 9:10].clamp_min(1e-6), attrs[:, 10:11].clamp_min(1e-6)  # mm per texel
            nb = n1[:, :, rows]
            ts = F.normalize(torch.cat([nb[:, :1] / du, nb[:, 1:2] / dv, nb[:, 2:]], dim=1), dim=1)
            ts = torch.where(cov[None, None], ts, flat)
            t_, b_, n_ = (F.normalize(attrs[:, k : k + 3], dim=1) for k in (0, 3, 6))
            os_ = torch.where(cov[None, None], tangent_to_object(ts, t_, b_, n_, dim=1), torch.zeros(()))
            tangent[rows] = ts[0].permute(1, 2, 0).numpy()
            obj[rows] = os_[0].permute(1, 2, 0).numpy()
            texel[rows] = torch.where(chart[None, None], attrs[:, 9:11], torch.zeros(()))[0].permute(1, 2, 0).numpy()
            covered[rows] = cov.numpy()
    return NormalMaps(tangent=tangent, object=obj, texel_mm=texel, coverage=covered)


@dataclass(frozen=True)
class ChartLookup:
    """A UV chart rasterised at ``W``² (row 0 = v 0) as interpolation weights: ``weights`` is a sparse CSR
    ``[W·W, U]`` matrix whose row for a covered texel holds the barycentric weights of its triangle's three UV
    corners (fds.render's convention) and whose other rows are empty."""

    resolution: int
    weights: torch.Tensor

    def interpolate(self, attr: torch.Tensor) -> torch.Tensor:
        """Per-UV ``attr [U, C]`` → ``[C, W, W]`` (0 outside the chart)."""
        w = self.resolution
        return torch.sparse.mm(self.weights, attr).T.reshape(-1, w, w)


@lru_cache(maxsize=4)
def _chart_lookup(key: str, uv_bytes: bytes, tri_bytes: bytes, work_resolution: int, device: str) -> ChartLookup:
    del key  # the digest of the byte strings, a cheap cache key
    uv = torch.from_numpy(np.frombuffer(uv_bytes, np.float32).reshape(-1, 2).copy()).to(device)
    tri = torch.from_numpy(np.frombuffer(tri_bytes, np.int32).reshape(-1, 3).copy()).to(device)
    w = int(work_resolution)
    rast = rasterize_uv(uv, tri, (w, w), backend="auto")[0].reshape(-1, 4)  # nvdiffrast on CUDA
    texels = torch.nonzero(rast[:, 3] > 0)[:, 0]
    r = rast[texels]
    corners = tri.long()[r[:, 3].round().long() - 1].T  # [3, N] UV indices
    bary = torch.stack([r[:, 0], r[:, 1], 1.0 - r[:, 0] - r[:, 1]])  # [3, N]
    coo = torch.sparse_coo_tensor(torch.stack([texels.repeat(3), corners.reshape(-1)]), bary.reshape(-1),
                                  (w * w, len(uv)), check_invariants=True).coalesce()
    with warnings.catch_warnings():  # "sparse CSR support is in beta": its matrix product is all we use
        warnings.simplefilter("ignore", UserWarning)
        weights = coo.to_sparse_csr()
    return ChartLookup(w, weights)


def chart_lookup(uv: np.ndarray, uv_triangles: np.ndarray, work_resolution: int,
                 device: str | torch.device = "cpu") -> ChartLookup:
    """The UV chart's rasterisation at ``work_resolution`` as a :class:`ChartLookup` on ``device`` (rasterised
    there: nvdiffrast on CUDA, the torch rasteriser on CPU), cached per process for each UV layout and device
    (a face model's chart is the same for every face)."""
    uv_b = np.ascontiguousarray(uv, np.float32).tobytes()
    tri_b = np.ascontiguousarray(uv_triangles, np.int32).tobytes()
    return _chart_lookup(hashlib.sha1(uv_b + tri_b).hexdigest(), uv_b, tri_b, int(work_resolution),
                         str(torch.device(device)))


def _upsample_rows(low: torch.Tensor, factor: int, r0: int, r1: int) -> torch.Tensor:
    """Rows ``[r0, r1)`` of the bilinear (align_corners=False, clamped) upsampling of ``low [1, C, W, W]`` by an
    integer ``factor``: what ``texture`` samples at those texel centres, from source rows with a one-row margin."""
    if factor == 1:
        return low[:, :, r0:r1]
    w = low.shape[-1]
    a, b = max(r0 // factor - 1, 0), min(-(-r1 // factor) + 1, w)  # source rows [a, b)
    up = torch.nn.functional.interpolate(low[:, :, a:b], scale_factor=factor, mode="bilinear", align_corners=False)
    return up[:, :, r0 - a * factor : r1 - a * factor]


def _sobel_rows(padded: torch.Tensor, r0: int, r1: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised Sobel derivatives (kornia's ``spatial_gradient(mode="sobel", normalized=True)``) of rows
    ``[r0, r1)`` of a map, from ``padded [R + 2, R + 2]`` (the map with its border replicated) → (d/dcolumn,
    d/drow), each ``[h, R]``, per texel."""
    p = padded[r0 : r1 + 2]
    dc = p[:, 2:] - p[:, :-2]  # [h + 2, R]
    dr = p[2:] - p[:-2]  # [h, R + 2]
    gx = (dc[:-2] + dc[2:]).add_(dc[1:-1], alpha=2.0).mul_(0.125)
    gy = (dr[:, :-2] + dr[:, 2:]).add_(dr[:, 1:-1], alpha=2.0).mul_(0.125)
    return gx, gy


def normal_maps(
    displacement_mm: np.ndarray,
    vertices: np.ndarray,
    triangles: np.ndarray,
    uv: np.ndarray,
    uv_triangles: np.ndarray,
    coverage: np.ndarray | None = None,
    work_resolution: int = 1024,
    band_rows: int | None = None,
    device: str | torch.device = "cpu",
) -> NormalMaps:
    """Tangent- and object-space normal maps of ``displacement_mm [R, R]`` (mm) on the proxy mesh.

    ``vertices [V, 3]`` mm (the fitted proxy, model frame), ``triangles [T, 3]``, ``uv [U, 2]`` image convention,
    ``uv_triangles [T, 3]``; ``coverage`` (``bool [R, R]``, default the chart) limits where normals are written.

    The fast path of :func:`normal_maps_reference` (used instead when R is not a multiple of the work
    resolution): the chart's rasterisation is cached per UV layout as a sparse interpolation matrix, frames are
    upsampled by an integer factor with ``F.interpolate`` (the same bilinear weights as ``texture`` at texel
    centres), the object normal is normalise(N̂ + s_x·T̂ + s_y·B̂) with the tangent-space slopes s (the
    same direction as the reference's x·T̂ + y·B̂ + z·N̂), and rows go in bands of ``band_rows`` (default
    ~256k texels a band on the CPU: temporaries stay in cache and are reused instead of mapped anew; the whole
    map at once on a GPU). On ``device="cuda"`` everything runs there (the chart rasterised by nvdiffrast) and
    the maps come back to the CPU once at the end.
    """
    d = np.asarray(displacement_mm, np.float32)
    if d.ndim != 2 or d.shape[0] != d.shape[1]:
        raise ValueError(f"displacement_mm must be a square [R, R] map in mm, got shape {d.shape}")
    r_ = d.shape[0]
    w = min(r_, int(work_resolution))
    if r_ % w:
        return normal_maps_reference(displacement_mm, vertices, triangles, uv, uv_triangles, coverage, w)
    dev = torch.device(device)
    user_cov = None if coverage is None else torch.from_numpy(np.asarray(coverage, bool))
    if user_cov is not None and tuple(user_cov.shape) != (r_, r_):
        raise ValueError(f"coverage must be bool [{r_}, {r_}] like the map, got {tuple(user_cov.shape)}")
    if user_cov is not None:
        user_cov = user_cov.to(dev)
    verts = torch.from_numpy(np.asarray(vertices, np.float32)).to(dev)
    tri = torch.from_numpy(np.asarray(triangles, np.int64)).to(dev)
    uv_t = torch.from_numpy(np.asarray(uv, np.float32)).to(dev)
    uv_tri = torch.from_numpy(np.asarray(uv_triangles, np.int64)).to(dev)
    owner = torch.from_numpy(uv_vertex_index(triangles, uv_triangles, len(uv)).clip(0)).to(dev)
    tangent = torch.empty((r_, r_, 3), dtype=torch.float32, device=dev)
    obj = torch.empty((r_, r_, 3), dtype=torch.float32, device=dev)
    texel = torch.empty((r_, r_, 2), dtype=torch.float32, device=dev)
    covered = torch.empty((r_, r_), dtype=torch.bool, device=dev)
    if not band_rows:
        band_rows = max(8, (1 << 18) // r_) if dev.type == "cpu" else r_
    with torch.no_grad():
        t_vec, b_vec, n_vec = tangent_frames(verts, uv_t, tri, uv_tri)  # [V, 3] each
        scale = torch.from_numpy(vertex_texel_scale(vertices, triangles, uv, uv_triangles)).float().to(dev) / r_
        per_uv = torch.cat([t_vec, b_vec, n_vec, scale], dim=1)[owner]  # [U, 11]; scale in mm/texel
        lookup = chart_lookup(uv, uv_triangles, w, dev)
        a_low = lookup.interpolate(torch.cat([per_uv, per_uv.new_ones(len(per_uv), 1)], 1))  # [12, W, W]
        cov_low = a_low[11]  # [W, W]: 1 inside the chart, 0 outside
        low = torch.cat([a_low[:11] * cov_low, cov_low[None]])[None].contiguous()  # [1, 12, W, W] premultiplied
        padded = F.pad(torch.from_numpy(d).to(dev)[None, None], (1, 1, 1, 1), mode="replicate")[0, 0]
        flat = torch.tensor([0.0, 0.0, 1.0], device=dev)
        for r0 in range(0, r_, int(band_rows)):
            r1 = min(r_, r0 + int(band_rows))
            a = _upsample_rows(low, r_ // w, r0, r1)[0]  # [12, h, R]
            cov = a[11]
            chart = cov >= 0.5
            band_cov = chart if user_cov is None else chart & user_cov[r0:r1]
            texel_uv = a[9:11] / cov.clamp_min(1e-6)  # [2, h, R] mm per texel along u, v
            gx, gy = _sobel_rows(padded, r0, r1)
            sx = gx.neg_().div_(texel_uv[0].clamp_min(1e-6))  # n ∝ (s_x, s_y, 1) in the tangent frame
            sy = gy.div_(texel_uv[1].clamp_min(1e-6))
            inv = torch.rsqrt(sx * sx + sy * sy + 1.0)
            t_out = tangent[r0:r1]  # [h, R, 3] views of the outputs
            t_out[..., 0], t_out[..., 1], t_out[..., 2] = sx * inv, sy * inv, inv
            t_out[~band_cov] = flat
            fr = a[:9].view(3, 3, *a.shape[1:])  # T, B, N (blends of unit vectors, times the coverage)
            unit = torch.rsqrt((fr * fr).sum(1).clamp_min(1e-24))  # [3, h, R]: 1 / |T|, 1 / |B|, 1 / |N|
            o = torch.addcmul(fr[2] * unit[2], fr[0], sx * unit[0]).addcmul_(fr[1], sy * unit[1])  # N̂ + s_x·T̂ + s_y·B̂
            o.mul_(torch.rsqrt((o * o).sum(0).clamp_min(1e-24)) * band_cov)
            obj[r0:r1].copy_(o.permute(1, 2, 0))
            texel[r0:r1].copy_((texel_uv * chart).permute(1, 2, 0))
            covered[r0:r1] = band_cov
    return NormalMaps(tangent=tangent.cpu().numpy(), object=obj.cpu().numpy(), texel_mm=texel.cpu().numpy(),
                      coverage=covered.cpu().numpy())
