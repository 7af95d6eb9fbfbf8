"""Pure-PyTorch rasteriser backend (CPU and CUDA) with nvdiffrast's conventions.

Two passes:
1. Visibility, no grad. Triangles (per batch item) are grouped by screen bounding-box size into buckets of
   1, 2, 3, 4, 6, 8, 12, … pixels per axis; each bucket tests a dense block of pixel centres per triangle
   with homogeneous edge functions (exact for triangles crossing w = 0, no geometric clipping needed),
   keeps centres with all barycentrics ≥ 0, in front of the eye and −1 ≤ z/w ≤ 1, and resolves depth with
   ``scatter_reduce(amin)`` over int64 keys ``(quantised z/w << 32) | triangle``: smallest z/w wins,
   ties go to the lower triangle index. Work is chunked to ``max_candidates`` pixel tests at a time.
2. Differentiable barycentrics for the winner of each covered pixel, from the clip-space vertices:
   with V_i = (x_i, y_i, w_i) and p = (x_ndc, y_ndc, 1) the pixel centre, e_i = (V_j × V_k)·p for cyclic
   (i, j, k); perspective-correct barycentrics are e_i / Σe; ``u = b0``, ``v = b1``; z/w = Σ e_i z_i / det
   is detached (as in nvdiffrast, gradients flow through u, v only).
"""

from __future__ import annotations

import torch

_KEY_EMPTY = torch.iinfo(torch.int64).max
_DEPTH_LEVELS = (1 << 31) - 2


def rasterize_torch(
    pos: torch.Tensor, tri: torch.Tensor, resolution: tuple[int, int], max_candidates: int = 1 << 20
) -> torch.Tensor:
    """``pos [B, V, 4]`` clip space, ``tri [T, 3]`` int64 → ``rast [B, H, W, 4]`` (u, v, z/w, id + 1)."""
    b, n_v, _ = pos.shape
    h, w = resolution
    winner = _visibility(pos.detach(), tri, h, w, max_candidates)  # [B*H*W] int64, −1 = empty
    covered = torch.nonzero(winner >= 0).squeeze(1)  # [N]
    out = pos.new_zeros(b * h * w, 4)
    if covered.numel() == 0:
        return out.view(b, h, w, 4)
    tid = winner[covered]  # [N]
    bi = torch.div(covered, h * w, rounding_mode="floor")
    rem = covered - bi * (h * w)
    row = torch.div(rem, w, rounding_mode="floor")
    col = rem - row * w
    xn = (2 * col + 1).to(pos.dtype) / w - 1
    yn = (2 * row + 1).to(pos.dtype) / h - 1
    coef, zcoef = _edge_coefs(pos.index_select(1, tri.reshape(-1)).view(-1, 3, 4))  # per (batch, triangle)
    g = bi * tri.shape[0] + tid  # [N] flattened (batch, triangle)
    c = coef.index_select(0, g)  # [N, 9] with grad
    e0 = c[:, 0] * xn + c[:, 1] * yn + c[:, 2]
    e1 = c[:, 3] * xn + c[:, 4] * yn + c[:, 5]
    e2 = c[:, 6] * xn + c[:, 7] * yn + c[:, 8]
    s = e0 + e1 + e2
    u, v = e0 / s, e1 / s
    with torch.no_grad():
        zc = zcoef.index_select(0, g)
        zw = e0 * zc[:, 0] + e1 * zc[:, 1] + e2 * zc[:, 2]
    vals = torch.stack([u, v, zw, (tid + 1).to(pos.dtype)], dim=-1)
    out = out.index_put((covered,), vals)
    return out.view(b, h, w, 4)


def _edge_coefs(verts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Edge rows of each triangle ``verts [N, 3, 4]`` → ``([N, 9], [N, 3])``.

    e_i(xn, yn) = A_i xn + B_i yn + C_i = (V_j × V_k)·(xn, yn, 1) with V = (x, y, w) and (i, j, k) cyclic,
    laid out (A0, B0, C0, A1, …); the second output is z_i / det [V0 V1 V2] (detached), so that
    z/w = Σ e_i z_i / det.
    """
    x0, y0, w0 = verts[:, 0, 0], verts[:, 0, 1], verts[:, 0, 3]
    x1, y1, w1 = verts[:, 1, 0], verts[:, 1, 1], verts[:, 1, 3]
    x2, y2, w2 = verts[:, 2, 0], verts[:, 2, 1], verts[:, 2, 3]
    a0, b0, c0 = y1 * w2 - w1 * y2, w1 * x2 - x1 * w2, x1 * y2 - y1 * x2
    a1, b1, c1 = y2 * w0 - w2 * y0, w2 * x0 - x2 * w0, x2 * y0 - y2 * x0
    a2, b2, c2 = y0 * w1 - w0 * y1, w0 * x1 - x0 * w1, x0 * y1 - y0 * x1
    coef = torch.stack([a0, b0, c0, a1, b1, c1, a2, b2, c2], dim=-1)
    with torch.no_grad():
        det = x0 * a0 + y0 * b0 + w0 * c0
        det = torch.where(det == 0, torch.ones_like(det), det)
        zcoef = verts[:, :, 2] / det.unsqueeze(-1)
    return coef, zcoef


def _bucket_sizes(limit: int) -> list[int]:
    """Bucket edge lengths 1, 2, 3, 4, 6, 8, 12, 16, … ≥ ``limit`` (≤ 1.5× padding per axis)."""
    sizes, k = [1, 2, 3], 4
    while sizes[-1] < limit:
        sizes += [k, k * 3 // 2]
        k *= 2
    return sizes


@torch.no_grad()
def _visibility(pos: torch.Tensor, tri: torch.Tensor, h: int, w: int, max_candidates: int) -> torch.Tensor:
    """Winning triangle per pixel ``[B*H*W]`` (−1 where empty), no grad.

    Setup in float64, pixel tests in float32. The edge coefficients of a shared edge are exact negatives
    of each other in both triangles, so the test ``e ≥ 0`` leaves no holes between neighbours.
    """
    b = pos.shape[0]
    t = tri.shape[0]
    dev = pos.device
    keys = torch.full((b * h * w,), _KEY_EMPTY, dtype=torch.int64, device=dev)
    v = pos.double().index_select(1, tri.reshape(-1)).view(b * t, 3, 4)  # [BT, 3(vertex), 4]
    x, y, z, ww = (v[..., i].contiguous() for i in range(4))  # [BT, 3] each
    # Trivial reject: all three vertices outside one clip plane (or behind the eye).
    outside = (
        (x > ww).all(-1)
        | (x < -ww).all(-1)
        | (y > ww).all(-1)
        | (y < -ww).all(-1)
        | (z > ww).all(-1)
        | (z < -ww).all(-1)
        | (ww <= 0).all(-1)
    )
    front = (ww > 0).all(-1)
    safe_w = torch.where(ww > 0, ww, torch.ones_like(ww))
    px = (x / safe_w + 1) * (w / 2) - 0.5  # pixel-centre coordinates, column
    py = (y / safe_w + 1) * (h / 2) - 0.5  # row (row 0 is y = −1)
    px_min, px_max, py_min, py_max = px.amin(-1), px.amax(-1), py.amin(-1), py.amax(-1)
    eps = 1e-6
    zero, x_last, y_last = torch.zeros_like(px_min), torch.full_like(px_min, w - 1), torch.full_like(px_min, h - 1)
    x0 = torch.where(front, torch.ceil(px_min - eps), zero).clamp(0, w - 1)
    x1 = torch.where(front, torch.floor(px_max + eps), x_last).clamp(0, w - 1)
    y0 = torch.where(front, torch.ceil(py_min - eps), zero).clamp(0, h - 1)
    y1 = torch.where(front, torch.floor(py_max + eps), y_last).clamp(0, h - 1)
    bw = (x1 - x0 + 1).long()
    bh = (y1 - y0 + 1).long()
    empty_box = ((px_max < -eps) | (px_min > w - 1 + eps) | (py_max < -eps) | (py_min > h - 1 + eps)) & front
    coef9, _ = _edge_coefs(v)  # [BT, 9] float64, (A0, B0, C0, A1, …)
    ea, eb, ec = coef9[:, 0::3], coef9[:, 1::3], coef9[:, 2::3]  # [BT, 3] each
    det = v[:, 0, 0] * ea[:, 0] + v[:, 0, 1] * eb[:, 0] + v[:, 0, 3] * ec[:, 0]  # det [V0 V1 V2]
    sgn = torch.where(det < 0, -1.0, 1.0).to(det.dtype).unsqueeze(-1)
    live_mask = (bw > 0) & (bh > 0) & ~outside & ~empty_box & (det != 0)
    live = torch.nonzero(live_mask).squeeze(1)
    if live.numel() == 0:
        return torch.full((b * h * w,), -1, dtype=torch.int64, device=dev)
    # λ'_i = e_i / det ≥ 0 inside and Σλ' = 1/w_P > 0 in front: multiply rows by sign(det), test e ≥ 0, s > 0.
    coef = torch.stack([ea * sgn, eb * sgn, ec * sgn, z / det.abs().unsqueeze(-1)], dim=1).float()  # [BT,4,3]
    sizes = _bucket_sizes(max(h, w))
    size_t = torch.tensor(sizes, device=dev)
    bx = torch.searchsorted(size_t, bw[live])
    by = torch.searchsorted(size_t, bh[live])
    bucket = bx * len(sizes) + by
    order = torch.argsort(bucket)
    live, bucket = live[order], bucket[order]
    uniq, counts = torch.unique_consecutive(bucket, return_counts=True)
    start = 0
    for key, n in zip(uniq.tolist(), counts.tolist(), strict=True):
        kw, kh = sizes[key // len(sizes)], sizes[key % len(sizes)]
        step = max(1, max_candidates // (kw * kh))
        for s0 in range(start, start + n, step):
            ids = live[s0 : min(s0 + step, start + n)]
            _test_bucket(keys, ids, kw, kh, x0, y0, coef, t, h, w)
        start += n
    return torch.where(keys == _KEY_EMPTY, torch.full_like(keys, -1), keys & 0xFFFFFFFF)


def _test_bucket(keys, ids, kw, kh, x0, y0, coef, t, h, w) -> None:
    """Test a [n, kh, kw] block of pixel centres per triangle and scatter depth keys (in place)."""
    dev = keys.device
    cx = x0[ids].long()[:, None, None] + torch.arange(kw, device=dev)[None, None, :]  # [n, 1, kw]
    cy = y0[ids].long()[:, None, None] + torch.arange(kh, device=dev)[None, :, None]  # [n, kh, 1]
    xn = (2 * cx + 1).float() / w - 1
    yn = (2 * cy + 1).float() / h - 1
    c = coef[ids]  # [n, 4, 3]
    inside = (cx < w) & (cy < h)
    e = []
    for i in range(3):
        a_, b_, c_ = (c[:, r, i, None, None] for r in range(3))
        ei = (a_ * xn + c_) + b_ * yn  # [n, kh, kw]
        inside = inside & (ei >= 0)
        e.append(ei)
    s = e[0] + e[1] + e[2]
    zw = e[0] * c[:, 3, 0, None, None] + e[1] * c[:, 3, 1, None, None] + e[2] * c[:, 3, 2, None, None]
    inside = inside & (s > 0) & (zw >= -1) & (zw <= 1)
    n_idx, r_idx, c_idx = torch.nonzero(inside, as_tuple=True)
    if n_idx.numel() == 0:
        return
    zq = ((zw[n_idx, r_idx, c_idx].double() + 1) * (0.5 * _DEPTH_LEVELS)).long().clamp(0, _DEPTH_LEVELS)
    g = ids[n_idx]
    key = (zq << 32) | (g % t)
    pix = (g // t) * (h * w) + (cy[n_idx, r_idx, 0]) * w + cx[n_idx, 0, c_idx]
    keys.scatter_reduce_(0, pix, key, reduce="amin", include_self=True)
