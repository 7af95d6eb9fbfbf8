"""The shading cue: how a UV texture's brightness would change if the surface tilted, from the photo's own lighting.

A wrinkle shows in a photo as shading: a small tilt ``δn`` of the normal changes the brightness by
``∇ₙS · δn`` where ``S(n)`` is the lighting's shading. A patch of the UV texture alone does not say which way
the light falls, so the same groove reads as a dark-then-bright or a bright-then-dark pair depending on a light
the network cannot see. This module estimates the light from the whole texture and hands it to the network as
two extra input channels (``channels="v_cue"``, :func:`fds.data.patches.preprocess`)::

    cue[0] = (∇ₙS · e_col) / S      relative brightness change per radian of tilt towards +column (u)
    cue[1] = (∇ₙS · e_row) / S      the same towards +row (v, down the chart)

Frames: the normals and tangents are the face model's *mean shape* in the model frame (pose and identity are not
needed, so the cue is a function of the texture alone and inference, training and evaluation compute it the same
way). The lighting is order-2 SH fitted in that frame to the texture's HSV V with a smooth albedo
(:func:`fds.render.shading.estimate_sh_and_albedo`, the appearance stream's fit), on a coarse copy of the chart.
Texels the photo does not show (texture ≈ 0) and texels outside the chart get 0.

Mirroring: a left-right mirrored texture is the mirrored face under the mirrored light, so its cue is the
mirrored cue with ``cue[0]`` negated (:func:`mirror_cue`; the chart is left-right symmetric to within a texel).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from fds.facemodel import FaceModel
from fds.facemodel.uvchart import uv_chart
from fds.render.normals import vertex_normals
from fds.render.shading import estimate_sh_and_albedo, sh_irradiance

#: Side of the coarse chart the lighting is fitted on (texels); the cue itself is evaluated at full resolution.
FIT_RESOLUTION = 256
#: V below this is "not seen" (the unwrap writes 0 where the photo does not show the texel).
SEEN_V = 0.02
#: |cue| is clipped here: under a grazing or nearly black light S → 0 and the ratio means nothing.
CUE_CLIP = 4.0


@lru_cache(maxsize=8)
def _template_frame(fm: FaceModel, r: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mean-shape UV maps at ``r``: unit normal, unit tangents along +col and +row (``[1, 3, R, R]`` each, model
    frame, tangents orthogonal to the normal) and ``bool [1, 1, R, R]`` texels where all three are defined."""
    chart = uv_chart(fm, r)
    verts = np.asarray(fm.vertices(), np.float32)  # [V, 3] mean shape, mm, model frame
    n_v = vertex_normals(torch.from_numpy(verts), torch.from_numpy(fm.triangles.astype(np.int64)))
    if float(n_v[:, 2].mean()) < 0:  # clockwise winding: outward = towards the viewer of a frontal face
        n_v = -n_v
    p = torch.from_numpy(chart.interpolate(verts)).permute(2, 0, 1)[None].double()  # [1, 3, R, R] mm
    n = F.normalize(torch.from_numpy(chart.interpolate(n_v.numpy())).permute(2, 0, 1)[None].double(), dim=1)
    cov = torch.from_numpy(chart.covered)[None, None]

    def along(dim: int) -> tuple[torch.Tensor, torch.Tensor]:  # central difference, defined where both sides are
        fwd, back = p.roll(-1, dim), p.roll(1, dim)
        ok = cov & cov.roll(-1, dim) & cov.roll(1, dim)
        e = fwd - back
        e = e - (e * n).sum(1, keepdim=True) * n  # in the tangent plane
        return F.normalize(e, dim=1), ok

    e_col, ok_col = along(3)
    e_row, ok_row = along(2)
    ok = ok_col & ok_row
    ok[..., 0, :] = ok[..., -1, :] = False  # roll wraps around the map's edges
    ok[..., :, 0] = ok[..., :, -1] = False
    return n.float(), e_col.float(), e_row.float(), ok


def shading_cue(texture: np.ndarray | torch.Tensor, fm: FaceModel) -> torch.Tensor:
    """The cue (module doc) of one UV texture of face model ``fm``: ``uint8 [R, R, 3]`` (or float ``[3, R, R]`` in
    [0, 1]) → ``float32 [2, R, R]``; 0 where the texture shows nothing."""
    t = torch.as_tensor(np.array(texture) if isinstance(texture, np.ndarray) else texture)
    if t.dim() == 3 and t.shape[0] != 3 and t.shape[-1] == 3:
        t = t.permute(2, 0, 1)  # [R, R, 3] → [3, R, R]
    if t.dim() != 3 or t.shape[0] != 3 or t.shape[1] != t.shape[2]:
        raise ValueError(f"texture must be a square UV texture [R, R, 3] or [3, R, R], got {tuple(texture.shape)}")
    t = t.float() / 255.0 if t.dtype == torch.uint8 else t.float()
    r = int(t.shape[-1])
    v = t.amax(0, keepdim=True)[None]  # [1, 1, R, R] HSV V, as the network's V channel
    n, e_col, e_row, ok = _template_frame(fm, r)
    seen = ok & (v > SEEN_V)
    rf = min(FIT_RESOLUTION, r)
    nf, _, _, okf = _template_frame(fm, rf)
    vf = F.interpolate(v, size=(rf, rf), mode="area") if rf != r else v
    seen_f = (F.interpolate(seen.float(), size=(rf, rf), mode="area") > 0.99) if rf != r else seen.float() > 0
    mask = (okf & seen_f).float()
    if mask.sum() < 64:  # too little of the face to fit a light: no cue
        return torch.zeros(2, r, r)
    sh, _ = estimate_sh_and_albedo(vf, nf, mask, sigma_px=rf / 64)  # [1, 1, 9], the appearance stream's fit
    with torch.enable_grad():
        n_var = n.clone().requires_grad_(True)
        s = sh_irradiance(n_var, sh)  # [1, 1, R, R]
        (grad,) = torch.autograd.grad(s.sum(), n_var)  # [1, 3, R, R] ∇ₙS
    s = s.detach()
    floor = 0.1 * float(s[seen].abs().mean()) if seen.any() else 1.0
    s = s.clamp_min(max(floor, 1e-6))
    cue = torch.cat([(grad * e_col).sum(1, keepdim=True), (grad * e_row).sum(1, keepdim=True)], 1) / s
    cue = torch.where(seen, cue.clamp(-CUE_CLIP, CUE_CLIP), torch.zeros_like(cue))
    return cue[0].float().contiguous()


def mirror_cue(cue: torch.Tensor) -> torch.Tensor:
    """The cue of the left-right mirrored texture (``[..., 2, H, W]``): mirrored, the +column component negated."""
    m = torch.flip(cue, dims=[-1])
    return torch.cat([-m[..., :1, :, :], m[..., 1:, :, :]], dim=-3)
