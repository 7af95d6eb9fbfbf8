"""Torch vs nvdiffrast backends on the same CUDA inputs (skipped without CUDA or without nvdiffrast).

Where the two may differ, and by how much, follows from how nvdiffrast rasterises: its CUDA rasteriser snaps
vertex positions to 1/16 pixel (``CR_SUBPIXEL_LOG2 = 4``), so each vertex moves by at most √2/32 ≈ 0.044 px and
so does every edge; barycentrics are then evaluated in float32 from the unsnapped positions. Hence:

- a pixel centre farther than 1/16 px from every edge of its triangle lies in that triangle for both backends,
  and ids must agree on *all* such interior pixels (only edge pixels may go to the neighbour), away from the
  silhouette (2 px), where the near and the far side of the sphere meet edge-on at almost the same depth. The
  scene's vertex noise is small enough (0.1 % of the radius, 4 % of an edge) that the surface never folds onto
  itself, which would put two triangles at the same depth on one pixel;
- on pixels with the same id the barycentrics and z/w differ only by float32 evaluation, which is far from a few
  ulps here: both backends form homogeneous edge functions e_i = (V_j × V_k)·(x, y, 1) (nvdiffrast as
  (x_j − x w_j)(y_k − y w_k) − …), and on triangles of ~2 px the terms are ~10⁴ times the result. The bound is
  the standard one for such sums: each e_i is within γ_8·T_i of its exact value (at most 8 roundings on any path,
  γ_n = n·2⁻²⁴/(1 − n·2⁻²⁴), the pixel centre's own rounding included), with T_i the sum of the magnitudes of
  its terms, so u = e_0/Σe is within γ_8·(T_0 + |u|·ΣT)/|Σe| of exact, and twice that between two backends;
  likewise z/w (:func:`rounding_bounds`, evaluated in float64). Checked per pixel; where a triangle is seen
  edge-on (Σe → 0) the bound is loose, as float32 is;
- gradients: an attribute's gradient is Σ over pixels of the pixel's weight times its barycentric, so the
  difference between the backends is bounded by what the pixels with different ids carry (≤ 2 weights each)
  plus the barycentric error of the others: an exact bound, computed from the same rasterisation; position
  gradients restricted to interior pixels with the same id come from the same formula on the same floats, so
  they agree in magnitude and direction up to float32 rounding (1 %: per-pixel terms of one vertex partly
  cancel, which magnifies their 1e-4-relative rounding).
"""

from __future__ import annotations

import pytest
import torch

from fds.render import interpolate, rasterize, uv_sphere

pytestmark = pytest.mark.cuda

SNAP_PX = 1.0 / 16  # nvdiffrast's subpixel grid: vertices (and edges) move by less than this
GAMMA_8 = 8 * 2.0**-24 / (1 - 8 * 2.0**-24)  # relative rounding of 8 float32 operations in a row


def _need_nvdiffrast() -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    from fds.render import _raster_nvdiffrast

    if not _raster_nvdiffrast.available(torch.device("cuda")):
        pytest.skip("nvdiffrast does not build here")


def _scene(batch: int = 2):
    v, t, _ = uv_sphere(96, 192)
    g = torch.Generator().manual_seed(0)
    pos = []
    for i in range(batch):
        ang = 0.3 * i
        rot = torch.tensor(
            [
                [1, 0, 0],
                [0, torch.cos(torch.tensor(ang)), -torch.sin(torch.tensor(ang))],
                [0, torch.sin(torch.tensor(ang)), torch.cos(torch.tensor(ang))],
            ]
        )
        p = v @ rot.T * 0.8 + 0.001 * torch.randn(v.shape, generator=g)
        z = 3.0 - p[:, 2]  # perspective: camera at z = 3 looking at −z
        clip = torch.stack([p[:, 0] * 2.5, -p[:, 1] * 2.5, (z - 2.0) * 0.9, z], -1)
        pos.append(clip)
    return torch.stack(pos).cuda(), t.cuda()


def edge_distance_px(pos: torch.Tensor, tri: torch.Tensor, rast: torch.Tensor) -> torch.Tensor:
    """``[B, H, W]`` distance (px) from each covered pixel centre to the nearest edge of its triangle in screen
    space (fds.render.raster conventions: pixel (r, c) centre at x_ndc = (2c + 1)/W − 1, y_ndc = (2r + 1)/H − 1);
    −1 where no triangle covers the pixel."""
    b, h, w, _ = rast.shape
    ndc = pos[..., :2] / pos[..., 3:4]
    px = torch.stack([(ndc[..., 0] + 1) * w / 2 - 0.5, (ndc[..., 1] + 1) * h / 2 - 0.5], -1)  # [B, V, 2]
    ids = rast[..., 3].round().long() - 1  # [B, H, W]
    covered = ids >= 0
    corners = px[torch.arange(b, device=pos.device)[:, None, None, None], tri[ids.clamp_min(0)]]  # [B, H, W, 3, 2]
    rows, cols = torch.meshgrid(torch.arange(h, device=pos.device), torch.arange(w, device=pos.device),
                                indexing="ij")
    p = torch.stack([cols, rows], -1).to(px.dtype)[None, :, :, None]  # [1, H, W, 1, 2]
    a, e = corners, corners.roll(-1, dims=-2) - corners  # each edge from a corner to the next
    cross = e[..., 0] * (p - a)[..., 1] - e[..., 1] * (p - a)[..., 0]
    dist = (cross.abs() / e.norm(dim=-1).clamp_min(1e-12)).amin(-1)
    return torch.where(covered, dist, torch.full_like(dist, -1.0))


def rounding_bounds(pos: torch.Tensor, tri: torch.Tensor, rast: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Per-pixel bounds (float64 ``[B, H, W]`` each) on how far two float32 evaluations of ``u``, ``v`` and z/w
    for the triangle ``rast`` names may differ (module docstring): ``2·γ_8·(T_i + |b_i|·ΣT)/|Σe|`` for the
    barycentrics and, for z/w, the same propagation through Σ z_i e_i / Σ w_i e_i plus the cancellation in the
    torch backend's determinant. Pixel centres as in :func:`edge_distance_px`; meaningless where uncovered."""
    b, h, w, _ = rast.shape
    ids = rast[..., 3].round().long() - 1
    v = pos.double()[torch.arange(b, device=pos.device)[:, None, None, None], tri[ids.clamp_min(0)]]  # [B,H,W,3,4]
    rows, cols = torch.meshgrid(torch.arange(h, device=pos.device), torch.arange(w, device=pos.device),
                                indexing="ij")
    xn = ((2 * cols + 1).double() / w - 1)[None, :, :, None]  # [1, H, W, 1]
    yn = ((2 * rows + 1).double() / h - 1)[None, :, :, None]
    x, y, z, ww = v.unbind(-1)  # [B, H, W, 3] each
    # magnitudes of x − x_ndc·w and y − y_ndc·w, the pixel centre's rounding (relative to ~1) included
    mx, my = x.abs() + (1 + xn.abs()) * ww.abs(), y.abs() + (1 + yn.abs()) * ww.abs()
    px, py = x - xn * ww, y - yn * ww
    j, k = [1, 2, 0], [2, 0, 1]
    e = px[..., j] * py[..., k] - py[..., j] * px[..., k]  # exact edge functions (to float64)
    t = mx[..., j] * my[..., k] + my[..., j] * mx[..., k]  # their terms' magnitudes
    s = e.sum(-1)
    g = 2 * GAMMA_8  # two backends, each within γ_8 of exact
    bary = g * (t + (e / s[..., None]).abs() * t.sum(-1, keepdim=True)) / s.abs()[..., None]
    den = (ww * e).sum(-1)  # = det[V0 V1 V2], the torch backend's denominator
    zw = (z * e).sum(-1) / den
    det_terms = sum(x[..., i0].abs() * y[..., i1].abs() * ww[..., i2].abs()
                    for i0, i1, i2 in ((0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0)))
    zw_bound = g * (((z.abs() + zw.abs()[..., None] * ww.abs()) * t).sum(-1) + zw.abs() * det_terms) / den.abs()
    return bary[..., 0], bary[..., 1], zw_bound


def interior_pixels(pos: torch.Tensor, tri: torch.Tensor, rast: torch.Tensor, rim_px: int = 2) -> torch.Tensor:
    """``bool [B, H, W]``: pixels farther than ``SNAP_PX`` from every edge of their triangle and at least ``rim_px``
    pixels inside the silhouette."""
    covered = (rast[..., 3] > 0).float()[:, None]
    inside = -torch.nn.functional.max_pool2d(-covered, 2 * rim_px + 1, 1, rim_px)[:, 0] > 0  # eroded coverage
    return inside & (edge_distance_px(pos, tri, rast) > SNAP_PX)


def test_backends_agree_on_ids_and_barycentrics() -> None:
    _need_nvdiffrast()
    pos, tri = _scene()
    res = (256, 320)
    a = rasterize(pos, tri, res, backend="torch")
    b = rasterize(pos, tri, res, backend="nvdiffrast")
    interior = interior_pixels(pos, tri, a)
    # this sphere has ~1.7 pixels per visible triangle: most pixels lie near an edge, yet most are interior
    assert float(interior.sum() / (a[..., 3] > 0).sum()) > 0.5
    same = a[..., 3] == b[..., 3]
    assert bool(same[interior].all()), f"{int((~same & interior).sum())} interior pixels got another triangle"
    same &= a[..., 3] > 0
    for k, bound in enumerate(rounding_bounds(pos, tri, a)):  # u, v, z/w
        excess = ((a[..., k] - b[..., k]).double().abs() - bound)[same]
        assert float(excess.max()) <= 0, f"channel {k}: {int((excess > 0).sum())} pixels beyond float32 rounding"


def test_backends_agree_on_gradients() -> None:
    _need_nvdiffrast()
    pos, tri = _scene()
    attr = torch.rand(pos.shape[0], pos.shape[1], 3, device=pos.device)
    weight = torch.linspace(0, 1, 3, device=pos.device)  # ≥ 0: the loss's weight of each channel
    res = (256, 256)
    with torch.no_grad():
        ra, rb = rasterize(pos, tri, res, backend="torch"), rasterize(pos, tri, res, backend="nvdiffrast")
        same = (ra[..., 3] == rb[..., 3]) & (ra[..., 3] > 0)
        interior = same & interior_pixels(pos, tri, ra)
        differ = (ra[..., 3] != rb[..., 3]).sum()  # pixels whose id (or coverage) differs
        bary_err = (ra[..., :2] - rb[..., :2])[same].abs().max()
    grads = {}
    for backend in ("torch", "nvdiffrast"):
        p = pos.clone().requires_grad_(True)
        at = attr.clone().requires_grad_(True)
        out = interpolate(at, rasterize(p, tri, res, backend=backend), tri, backend=backend) * weight
        (g_attr,) = torch.autograd.grad(out.sum(), at, retain_graph=True)
        (g_pos,) = torch.autograd.grad((out * interior[..., None]).sum(), p)
        grads[backend] = (g_attr, g_pos)
    (ga, pa), (gb, pb) = grads["torch"], grads["nvdiffrast"]
    # attribute gradient: Σ_pixels weight · barycentric; per covered pixel the barycentrics sum to 1, so
    # ‖g‖₁ = Σ weight · #covered pixels, and a differing pixel moves at most 2 · its weight (taken from one vertex
    # set, given to another), a same-id pixel at most 4 · bary_err (u, v and 1 − u − v)
    covered = (ra[..., 3] > 0).sum()
    bound = (2 * differ + 4 * bary_err * same.sum()) / covered
    assert float((ga - gb).abs().sum() / ga.abs().sum()) <= float(bound) + 1e-6
    # position gradient from interior same-id pixels only: magnitude and direction
    assert interior.any()
    assert abs(float(pb.norm() / pa.norm()) - 1) < 1e-2
    assert float(torch.nn.functional.cosine_similarity(pa.flatten(), pb.flatten(), dim=0)) > 1 - 1e-2 ** 2 / 2
    assert float((pa - pb).norm() / pa.norm()) < 1e-2
