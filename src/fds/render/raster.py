"""Rasterisation primitives shaped after nvdiffrast, with two backends sharing its conventions.

Conventions (both backends)
---------------------------
* ``pos_clip [B, V, 4]`` homogeneous clip coordinates; ``tri [T, 3]`` vertex indices shared by the batch.
* Pixel (row r, column c) has its centre at x_ndc = (2c + 1)/W − 1, y_ndc = (2r + 1)/H − 1, so **row 0 is
  y_ndc = −1** (nvdiffrast writes images bottom-up in OpenGL terms). fds's cameras (``fds.render.camera``)
  emit clip coordinates with y_ndc = −1 at the *top* of the photo / UV map, so outputs read top-down
  (row 0 = top) with no flip.
* ``rast [B, H, W, 4]`` = (u, v, z/w, triangle id + 1); all zero where no triangle covers the pixel centre.
  Barycentrics are perspective-correct: attribute = u·a0 + v·a1 + (1 − u − v)·a2.
* Smallest z/w wins; pixels with z/w outside [−1, 1] or behind the eye are empty; no back-face culling.
* Gradients flow only through u and v (z/w and ids are constants); without ``antialias`` there are no
  silhouette gradients.

Backends: ``"nvdiffrast"`` (CUDA only, package ``diffrp-nvdiffrast``, imported lazily), ``"torch"`` (pure
PyTorch, CPU or CUDA, float32 or float64) and ``"auto"``: nvdiffrast for CUDA tensors when it builds, else
torch; the choice is logged once per device.

Torch-backend limitation: ``antialias`` is a pass-through (returns ``color`` unchanged, warns once), so
silhouette gradients exist only with nvdiffrast. Ties at shared edges are resolved to the lower triangle id,
nvdiffrast uses its own fill rule: ids can differ on pixel centres lying exactly on an edge.
"""

from __future__ import annotations

import logging
import math

import torch
import torch.nn.functional as F

from fds.render import _raster_nvdiffrast as _nv
from fds.render._raster_torch import rasterize_torch

log = logging.getLogger(__name__)

BACKENDS = ("auto", "torch", "nvdiffrast")
_logged_choice: set[tuple[str, str]] = set()
_warned_antialias = False


def resolve_backend(backend: str, device: torch.device) -> str:
    """Concrete backend ("torch" or "nvdiffrast") for ``backend`` on ``device``; logs the ``auto`` choice."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    device = torch.device(device)
    if backend == "nvdiffrast":
        if device.type != "cuda":
            raise ValueError(
                f"backend='nvdiffrast' needs CUDA tensors, got pos_clip on {device}; use backend='torch' or 'auto'"
            )
        return "nvdiffrast"
    if backend == "torch":
        return "torch"
    chosen = "nvdiffrast" if device.type == "cuda" and _nv.available(device) else "torch"
    if (str(device), chosen) not in _logged_choice:
        _logged_choice.add((str(device), chosen))
        log.info("fds.render: backend auto → %s on %s", chosen, device)
    return chosen


def _check_pos_tri(pos_clip: torch.Tensor, tri: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(pos_clip, torch.Tensor) or pos_clip.dim() != 3 or pos_clip.shape[-1] != 4:
        shape = tuple(pos_clip.shape) if isinstance(pos_clip, torch.Tensor) else type(pos_clip).__name__
        raise ValueError(
            f"pos_clip must be a [B, V, 4] tensor of clip coordinates, got {shape} (add a batch axis: pos[None])"
        )
    if not pos_clip.is_floating_point():
        raise TypeError(f"pos_clip must be floating point (float32 or float64), got {pos_clip.dtype}")
    if not isinstance(tri, torch.Tensor):
        tri = torch.as_tensor(tri)
    if tri.dim() != 2 or tri.shape[-1] != 3:
        raise ValueError(f"tri must be a [T, 3] tensor of vertex indices, got {tuple(tri.shape)}")
    if tri.is_floating_point() or tri.dtype == torch.bool or tri.is_complex():
        raise TypeError(f"tri must hold integer vertex indices (int32 or int64), got {tri.dtype}")
    if tri.device != pos_clip.device:
        tri = tri.to(pos_clip.device)
    if tri.numel() and (int(tri.min()) < 0 or int(tri.max()) >= pos_clip.shape[1]):
        raise ValueError(
            f"tri indices must lie in [0, {pos_clip.shape[1] - 1}] (V = pos_clip.shape[1]), "
            f"got range [{int(tri.min())}, {int(tri.max())}]"
        )
    return pos_clip, tri


def _check_resolution(resolution) -> tuple[int, int]:
    try:
        h, w = (int(r) for r in resolution)
    except (TypeError, ValueError):
        raise ValueError(f"resolution must be (H, W) positive integers, got {resolution!r}") from None
    if h <= 0 or w <= 0:
        raise ValueError(f"resolution must be (H, W) positive integers, got {resolution!r}")
    return h, w


def rasterize(
    pos_clip: torch.Tensor, tri: torch.Tensor, resolution: tuple[int, int], backend: str = "auto"
) -> torch.Tensor:
    """Rasterise triangles: ``pos_clip [B, V, 4]``, ``tri [T, 3]`` → ``rast [B, H, W, 4]`` (see module doc).

    ``tri`` on another device is moved to ``pos_clip``'s; the nvdiffrast backend works in float32 (float64
    inputs are converted, gradients flow back). An empty mesh (V = 0 or T = 0) gives an all-zero image.
    """
    pos_clip, tri = _check_pos_tri(pos_clip, tri)
    h, w = _check_resolution(resolution)
    b = pos_clip.shape[0]
    if tri.shape[0] == 0 or pos_clip.shape[1] == 0 or b == 0:
        return pos_clip.new_zeros(b, h, w, 4) + 0 * pos_clip.sum()  # keeps the graph connected
    chosen = resolve_backend(backend, pos_clip.device)
    if chosen == "nvdiffrast":
        return _nv.rasterize(pos_clip.float().contiguous(), tri.int().contiguous(), (h, w))
    return rasterize_torch(pos_clip, tri.long(), (h, w))


def interpolate(attr: torch.Tensor, rast: torch.Tensor, tri: torch.Tensor, backend: str = "auto") -> torch.Tensor:
    """Interpolate vertex attributes: ``attr [B, V, C]`` or ``[V, C]`` → ``[B, H, W, C]`` (0 where empty).

    out = u·a0 + v·a1 + (1 − u − v)·a2 with (u, v) from ``rast``; differentiable in ``attr`` and in the
    barycentric channels of ``rast``. Unlike nvdiffrast this returns only the image (no derivative output).
    """
    if rast.dim() != 4 or rast.shape[-1] != 4:
        raise ValueError(f"rast must be [B, H, W, 4] from rasterize(), got {tuple(rast.shape)}")
    if attr.dim() not in (2, 3):
        raise ValueError(f"attr must be [B, V, C] or [V, C], got {tuple(attr.shape)}")
    if not attr.is_floating_point():
        raise TypeError(f"attr must be floating point, got {attr.dtype}")
    if not isinstance(tri, torch.Tensor) or tri.dim() != 2 or tri.shape[-1] != 3:
        raise ValueError(f"tri must be a [T, 3] tensor of vertex indices, got {getattr(tri, 'shape', tri)}")
    if tri.is_floating_point():
        raise TypeError(f"tri must hold integer vertex indices, got {tri.dtype}")
    if attr.device != rast.device:
        raise ValueError(f"attr is on {attr.device} but rast is on {rast.device}; move attr to rast's device")
    tri = tri.to(rast.device)
    b, h, w, _ = rast.shape
    if attr.dim() == 3 and attr.shape[0] not in (1, b):
        raise ValueError(f"attr batch {attr.shape[0]} must be 1 or match rast's batch {b}")
    chosen = resolve_backend(backend, rast.device) if tri.shape[0] else "torch"
    if chosen == "nvdiffrast":
        a = attr[0] if attr.dim() == 3 and attr.shape[0] == 1 and b > 1 else attr  # nvdiffrast broadcasts 2-D only
        a = a.float().contiguous()
        return _nv.interpolate(a, rast.float().contiguous(), tri.int().contiguous())
    return _interpolate_torch(attr, rast, tri.long())


def _interpolate_torch(attr: torch.Tensor, rast: torch.Tensor, tri: torch.Tensor) -> torch.Tensor:
    b, h, w, _ = rast.shape
    if attr.dim() == 2:
        attr = attr.unsqueeze(0)
    attr = attr.expand(b, -1, -1)
    c = attr.shape[-1]
    dtype = torch.promote_types(attr.dtype, rast.dtype)
    tid = rast[..., 3].detach().round().long() - 1  # [B, H, W]
    valid = tid >= 0
    if tri.shape[0] == 0 or not bool(valid.any()):
        return attr.new_zeros(b, h, w, c) + 0 * attr.sum() + 0 * rast[..., :2].sum()
    corner = tri[tid.clamp_min(0)].reshape(b, h * w, 3)  # [B, HW, 3] vertex ids
    del tid

    def at(k: int) -> torch.Tensor:  # corner k's attributes [B, H, W, C]: one corner at a time keeps the peak
        return attr.gather(1, corner[..., k:k + 1].expand(-1, -1, c)).view(b, h, w, c).to(dtype)  # ~1/3 lower

    u, v = rast[..., 0:1].to(dtype), rast[..., 1:2].to(dtype)
    out = u * at(0)
    out = out + v * at(1)  # the same sums in the same order as u·a0 + v·a1 + (1 − u − v)·a2: bit for bit
    out = out + (1 - u - v) * at(2)
    return torch.where(valid.unsqueeze(-1), out, out.new_zeros(()))


def texture(tex: torch.Tensor, uv: torch.Tensor, uv_da: torch.Tensor | None = None) -> torch.Tensor:
    """Texture lookup with clamped borders: ``tex [B|1, Ht, Wt, C]``, ``uv [B, H, W, 2]`` → ``[B, H, W, C]``.

    uv = (0, 0) is the outer corner of texel row 0, column 0; u runs along columns, v along rows (v down in
    image convention); texel (r, c) has its centre at ((c + 0.5)/Wt, (r + 0.5)/Ht). Differentiable in ``tex``
    and ``uv``.

    Without ``uv_da``: bilinear, equal to nvdiffrast's ``texture(filter_mode='linear', boundary_mode='clamp')``.
    A pixel that spans many texels then reads one point of the texture, so fine texture (pores under a small
    face) aliases into pixel noise that no camera records.

    With ``uv_da [B, H, W, 4]`` (screen-space derivatives (du/dx, du/dy, dv/dx, dv/dy) in UV units per pixel,
    nvdiffrast's layout; :func:`uv_derivatives` computes them from ``uv``): trilinear mip-mapping, as nvdiffrast's
    ``filter_mode='linear-mipmap-linear'``. Level k is the texture box-averaged over 2^k × 2^k texels; a pixel
    reads level λ = log2 of its footprint's longer axis in texels (0 when it spans less than a texel: plain
    bilinear), blending the two levels around λ, so each pixel averages the texels it covers.
    """
    if tex.dim() != 4:
        raise ValueError(f"tex must be [B, H, W, C] (channels last), got {tuple(tex.shape)}")
    if uv.dim() != 4 or uv.shape[-1] != 2:
        raise ValueError(f"uv must be [B, H, W, 2], got {tuple(uv.shape)}")
    if not tex.is_floating_point():
        raise TypeError(f"tex must be floating point (convert uint8 images with .float() / 255), got {tex.dtype}")
    if uv.device != tex.device:
        raise ValueError(f"uv is on {uv.device} but tex is on {tex.device}; put both on one device")
    b = uv.shape[0]
    if tex.shape[0] not in (1, b):
        raise ValueError(f"tex batch {tex.shape[0]} must be 1 or match uv's batch {b}")
    grid = (uv.to(tex.dtype) * 2 - 1).contiguous()
    src = tex.permute(0, 3, 1, 2)  # [B|1, C, Ht, Wt]

    def bilinear(level: torch.Tensor) -> torch.Tensor:  # [B|1, C, h, w] → [B, H, W, C]
        out = F.grid_sample(level.expand(b, -1, -1, -1), grid, mode="bilinear", padding_mode="border",
                            align_corners=False)
        return out.permute(0, 2, 3, 1)

    if uv_da is None:
        return bilinear(src)
    if uv_da.shape != (*uv.shape[:3], 4):
        raise ValueError(f"uv_da must be [B, H, W, 4] (du/dx, du/dy, dv/dx, dv/dy) for uv {tuple(uv.shape)}, "
                         f"got {tuple(uv_da.shape)}")
    ht, wt = src.shape[-2:]
    da = uv_da.to(tex.dtype)
    along_x = torch.hypot(da[..., 0] * wt, da[..., 2] * ht)  # footprint axes in texels [B, H, W]
    along_y = torch.hypot(da[..., 1] * wt, da[..., 3] * ht)
    top = math.ceil(math.log2(max(ht, wt)))  # the 1×1 level
    lod = torch.log2(torch.maximum(along_x, along_y).clamp_min(1.0)).clamp(max=top).detach()
    levels, out = [src], None
    for k in range(int(lod.max().ceil()) + 1 if lod.numel() else 1):
        if k > 0:
            prev = levels[-1]
            levels.append(F.interpolate(prev, size=(max(prev.shape[-2] // 2, 1), max(prev.shape[-1] // 2, 1)),
                                        mode="area"))
        weight = (1 - (lod - k).abs()).clamp_min(0)[..., None]  # hat weights: they sum to 1 for 0 ≤ λ ≤ top
        term = weight * bilinear(levels[k])
        out = term if out is None else out + term
    assert out is not None
    return out


def uv_derivatives(uv: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """Screen-space derivatives of a UV image: ``uv [B, H, W, 2]`` → ``uv_da [B, H, W, 4]`` = (du/dx, du/dy,
    dv/dx, dv/dy) in UV units per pixel (x along columns, y along rows), the layout :func:`texture` and
    nvdiffrast take.

    Finite differences between neighbouring pixels: along each axis the forward or the backward difference,
    whichever is shorter among those whose two pixels are ``valid [B, H, W]`` (default: all), so a silhouette or
    a UV seam next to a pixel never widens its footprint; 0 where neither neighbour is valid (plain bilinear).
    """
    if uv.dim() != 4 or uv.shape[-1] != 2:
        raise ValueError(f"uv must be [B, H, W, 2], got {tuple(uv.shape)}")
    ok = torch.ones(uv.shape[:3], dtype=torch.bool, device=uv.device) if valid is None else valid.bool()
    if ok.shape != uv.shape[:3]:
        raise ValueError(f"valid must be [B, H, W] = {tuple(uv.shape[:3])}, got {tuple(ok.shape)}")
    inf = torch.tensor(float("inf"), dtype=uv.dtype, device=uv.device)

    def along(dim: int) -> torch.Tensor:  # dim 2: x (columns), 1: y (rows) → [B, H, W, 2]
        n = uv.shape[dim]
        step = uv.diff(dim=dim)  # [.., n-1, .., 2]: pixel i+1 minus pixel i
        both = (ok.narrow(dim, 0, n - 1) & ok.narrow(dim, 1, n - 1))[..., None]
        length = torch.where(both, step.norm(dim=-1, keepdim=True), inf)
        pad_shape = list(step.shape)
        pad_shape[dim], pad_shape[-1] = 1, 1
        pad = inf.expand(pad_shape)
        fwd_len, bwd_len = torch.cat([length, pad], dim), torch.cat([pad, length], dim)
        zero = torch.zeros_like(step.narrow(dim, 0, 1))
        fwd, bwd = torch.cat([step, zero], dim), torch.cat([zero, step], dim)
        pick = torch.where(fwd_len <= bwd_len, fwd, bwd)
        return torch.where(torch.minimum(fwd_len, bwd_len).isfinite(), pick, torch.zeros_like(pick))

    dx, dy = along(2), along(1)
    return torch.stack([dx[..., 0], dy[..., 0], dx[..., 1], dy[..., 1]], dim=-1)


def antialias(
    color: torch.Tensor, rast: torch.Tensor, pos_clip: torch.Tensor, tri: torch.Tensor, backend: str = "auto"
) -> torch.Tensor:
    """Silhouette antialiasing ``color [B, H, W, C]`` → ``[B, H, W, C]`` (nvdiffrast's, giving edge gradients).

    With the torch backend this is a documented pass-through: it returns ``color`` unchanged (no
    silhouette gradients) and logs a warning once.
    """
    global _warned_antialias
    pos_clip, tri = _check_pos_tri(pos_clip, tri)
    chosen = resolve_backend(backend, color.device) if tri.shape[0] else "torch"
    if chosen == "nvdiffrast":
        return _nv.antialias(
            color.float().contiguous(),
            rast.float().contiguous(),
            pos_clip.float().contiguous(),
            tri.int().contiguous(),
        )
    if not _warned_antialias:
        _warned_antialias = True
        log.warning("fds.render.antialias: torch backend has no antialiasing; returning color unchanged")
    return color
