"""Torch vs nvdiffrast backends on the same CUDA inputs (skipped without CUDA or without nvdiffrast).

Where the two may differ, and by how much, follows from how nvdiffrast rasterises: its CUDA rasteriser snaps
vertex positions to 1/16 pixel (``CR_SUBPIXEL_LOG2 = 4``), so each vertex moves by at most √2/32 ≈ 0.044 px and
so does every edge; barycentrics are then evaluated in float32 from the unsnapped positions. Hence:

- a pixel centre farther than 1/16 px from every edge of its triangle lies in that triangle for both backends,
  and ids must agree on *all* such interior pixels (only edge pixels may go to the neighbour), away from the
  silhouette (2 px), where the near and the far side of the sphere meet edge-on at almost the same depth. The
  scene's vertex noise is small enough (0.1 % of the radius, 4 % of an edge) that the surface never folds onto
  itself, which would put two triangles at the same depth on one pixel;
- on pixels with the same id the barycentrics differ only by float32 evaluation (≤ 1e-4, a few hundred ulps of
  values in [0, 1]) and z/w likewise (≤ 1e-5);
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
    assert float((a[..., :2] - b[..., :2])[same].abs().max()) < 1e-4
    assert float((a[..., 2] - b[..., 2])[same].abs().max()) < 1e-5


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
