"""Normals: from position maps, from displacement maps, tangent frames of a mesh, tangent ↔ object space.

UV / map conventions (the project's image convention)
----------------------------------------------------
* Maps are ``[B, C, H, W]``; column index grows with u (right), row index grows with v (**down**):
  row 0 is v = 0, the top of the UV map.
* Tangent frame (T, B, N), right-handed, OpenGL-style "green up" normal maps:
  T points towards increasing u (right on the map), B towards *decreasing* row index (up on the map, i.e.
  increasing OpenGL v = 1 − v_image), N = T × B is the outward normal.
* A tangent-space normal (x, y, z) means x·T + y·B + z·N; a flat map is (0, 0, 1).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _central_diff(pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Central differences along columns (u) and rows (v) with one-sided ends: ``[B,C,H,W]`` each."""
    p = F.pad(pos, (1, 1, 1, 1), mode="replicate")
    d_u = 0.5 * (p[:, :, 1:-1, 2:] - p[:, :, 1:-1, :-2])
    d_v = 0.5 * (p[:, :, 2:, 1:-1] - p[:, :, :-2, 1:-1])
    return d_u, d_v


def normals_from_positions(pos: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Unit normals of a position map ``pos [B, 3, H, W]`` (any length unit) → ``[B, 3, H, W]``.

    n = normalise(∂P/∂v × ∂P/∂u) with u along columns and v along rows (down). For a chart that shows the
    surface from outside with its top at row 0 (u right, v down, not mirrored), this is the outward normal:
    ∂P/∂u ≈ +x, ∂P/∂v ≈ −y gives (−y) × x = +z. Texels whose neighbourhood is degenerate (background with
    constant position) get a zero normal.
    """
    if pos.dim() != 4 or pos.shape[1] != 3:
        raise ValueError(f"pos must be a [B, 3, H, W] position map, got {tuple(pos.shape)}")
    d_u, d_v = _central_diff(pos)
    n = torch.linalg.cross(d_v, d_u, dim=1)
    return n / n.norm(dim=1, keepdim=True).clamp_min(eps)


TexelMM = float | tuple[float, float] | torch.Tensor


def texel_sizes(texel_mm: TexelMM, like: torch.Tensor) -> tuple[float | torch.Tensor, float | torch.Tensor]:
    """``(du, dv)``: surface size (mm) of one texel along u (columns) and v (rows) for maps like ``like``
    ``[B, C, H, W]``, from a number (square texels), a pair ``(du, dv)``, a ``[B, 2]`` tensor (one pair per map) or
    a ``[B, 2, H, W]`` tensor (one pair per texel). Tensors come back as ``[B, 1|H, 1|W]``, broadcasting against a
    ``[B, H, W]`` channel; numbers stay Python floats."""
    if isinstance(texel_mm, torch.Tensor):
        b, _, h, w = like.shape
        t = texel_mm.to(device=like.device, dtype=like.dtype)
        if t.shape == (2,):
            t = t.expand(b, 2)
        if t.dim() == 2 and t.shape == (b, 2):
            t = t[:, :, None, None]
        if t.dim() != 4 or t.shape[:2] != (b, 2) or tuple(t.shape[2:]) not in ((h, w), (1, 1)):
            raise ValueError(f"texel_mm must be [2], [B={b}, 2] or [B, 2, {h}, {w}] mm per texel (du, dv), got "
                             f"{tuple(texel_mm.shape)}")
        if not bool(((t > 0) & torch.isfinite(t)).all()):
            raise ValueError("texel_mm must be positive and finite (mm per texel) everywhere")
        return t[:, 0], t[:, 1]
    du, dv = (texel_mm, texel_mm) if isinstance(texel_mm, int | float) else texel_mm
    if not (0 < du < math.inf and 0 < dv < math.inf):
        raise ValueError(f"texel_mm must be positive and finite (mm per texel), got {texel_mm}")
    return du, dv


def normals_from_displacement(displacement_mm: torch.Tensor, texel_mm: TexelMM, mode: str = "sobel") -> torch.Tensor:
    """Tangent-space unit normals ``[B, 3, H, W]`` of a height map along N, ``displacement_mm [B, 1, H, W]``.

    ``texel_mm`` is the size of one texel on the surface in mm along u and v (:func:`texel_sizes`: a number, a
    pair, per map ``[B, 2]`` or per texel ``[B, 2, H, W]``), so the slopes and therefore the normals are metric.
    With h the displacement (mm), x = column·du, and the bitangent pointing up the map:
    n = normalise(−∂h/∂x, +∂h/∂row / dv, 1). Gradients are kornia's normalised Sobel (or ``"diff"``) derivatives,
    exact for linear ramps away from the replicated border.
    """
    import kornia

    if displacement_mm.dim() != 4 or displacement_mm.shape[1] != 1:
        raise ValueError(f"displacement_mm must be a [B, 1, H, W] map in mm, got {tuple(displacement_mm.shape)}")
    du, dv = texel_sizes(texel_mm, displacement_mm)
    grad = kornia.filters.spatial_gradient(displacement_mm, mode=mode, order=1, normalized=True)  # [B,1,2,H,W]
    dh_dx = grad[:, 0, 0] / du  # per mm along T
    dh_drow = grad[:, 0, 1] / dv  # per mm along −B
    n = torch.stack([-dh_dx, dh_drow, torch.ones_like(dh_dx)], dim=1)
    return F.normalize(n, dim=1)


def vertex_normals(vertices: torch.Tensor, triangles: torch.Tensor) -> torch.Tensor:
    """Area-weighted unit vertex normals ``[V, 3]`` (outward for counter-clockwise triangles)."""
    tri = triangles.long()
    v0, v1, v2 = vertices[tri[:, 0]], vertices[tri[:, 1]], vertices[tri[:, 2]]
    face_n = torch.linalg.cross(v1 - v0, v2 - v0, dim=-1)  # [T, 3], |.| = 2·area
    n = torch.zeros_like(vertices).index_add_(0, tri.reshape(-1), face_n.repeat_interleave(3, dim=0))
    return F.normalize(n, dim=-1)


def tangent_frames(
    vertices: torch.Tensor,
    uvs: torch.Tensor,
    triangles: torch.Tensor,
    uv_triangles: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-vertex orthonormal tangent frames ``(T, B, N)``, each ``[V, 3]``, from positions and UVs.

    vertices ``[V, 3]`` (object space, any unit), uvs ``[V, 2]`` in image convention (u right, v down) or
    ``[U, 2]`` indexed by ``uv_triangles [T, 3]``, triangles ``[T, 3]`` counter-clockwise seen from outside.
    Per-triangle tangents (Lengyel) are accumulated per vertex, Gram-Schmidt-orthogonalised against the
    area-weighted vertex normal N; B = ±(N × T), the sign following the UV chart's handedness (so a mirrored
    chart gets B pointing up the map all the same).
    """
    tri = triangles.long()
    uv_tri = tri if uv_triangles is None else uv_triangles.long()
    if uvs.shape[-1] != 2:
        raise ValueError(f"uvs must be [V, 2], got {tuple(uvs.shape)}")
    n = vertex_normals(vertices, tri)
    p0, p1, p2 = vertices[tri[:, 0]], vertices[tri[:, 1]], vertices[tri[:, 2]]
    gl_uv = torch.stack([uvs[:, 0], 1.0 - uvs[:, 1]], dim=-1)  # OpenGL v up
    t0, t1, t2 = gl_uv[uv_tri[:, 0]], gl_uv[uv_tri[:, 1]], gl_uv[uv_tri[:, 2]]
    e1, e2 = p1 - p0, p2 - p0
    d1, d2 = t1 - t0, t2 - t0
    det = d1[:, 0] * d2[:, 1] - d2[:, 0] * d1[:, 1]  # [T], signed UV area ×2
    # Weight by UV orientation only (not 1/det) so degenerate UV triangles do not blow up.
    sign = torch.sign(det).unsqueeze(-1)
    tan = sign * (e1 * d2[:, 1:2] - e2 * d1[:, 1:2])  # ∝ ∂P/∂u
    bit = sign * (e2 * d1[:, 0:1] - e1 * d2[:, 0:1])  # ∝ ∂P/∂v (GL)
    idx = tri.reshape(-1)
    t_acc = torch.zeros_like(vertices).index_add_(0, idx, tan.repeat_interleave(3, dim=0))
    b_acc = torch.zeros_like(vertices).index_add_(0, idx, bit.repeat_interleave(3, dim=0))
    t = F.normalize(t_acc - (t_acc * n).sum(-1, keepdim=True) * n, dim=-1)
    cross = torch.linalg.cross(n, t, dim=-1)
    handed = torch.where((cross * b_acc).sum(-1, keepdim=True) < 0, -1.0, 1.0).to(vertices.dtype)
    return t, handed * cross, n


def tangent_to_object(
    normal_ts: torch.Tensor,
    tangent: torch.Tensor,
    bitangent: torch.Tensor,
    normal: torch.Tensor,
    dim: int = -1,
) -> torch.Tensor:
    """Tangent-space vectors → object space: x·T + y·B + z·N, all tensors share layout; ``dim`` = xyz axis.

    Works per vertex (``[V, 3]``) or per texel (``[B, H, W, 3]`` with dim=-1, ``[B, 3, H, W]`` with dim=1,
    e.g. frames interpolated into UV space). The result is re-normalised.
    """
    x, y, z = normal_ts.unbind(dim)
    out = x.unsqueeze(dim) * tangent + y.unsqueeze(dim) * bitangent + z.unsqueeze(dim) * normal
    return F.normalize(out, dim=dim)


def object_to_tangent(
    normal_os: torch.Tensor,
    tangent: torch.Tensor,
    bitangent: torch.Tensor,
    normal: torch.Tensor,
    dim: int = -1,
) -> torch.Tensor:
    """Object-space vectors → tangent space (projections on T, B, N); inverse of ``tangent_to_object``."""
    out = torch.stack(
        [(normal_os * tangent).sum(dim), (normal_os * bitangent).sum(dim), (normal_os * normal).sum(dim)],
        dim=dim,
    )
    return F.normalize(out, dim=dim)
