"""A face model's UV chart rasterised once per resolution: texel → (triangle, barycentrics), fast interpolation,
and where each texel lies on the face in the iBUG landmark frame.

The chart is rasterised with ``fds.render.rasterize_uv`` (the project's one rasteriser, any UV layout, seams
included), cached per process, and then any per-vertex attribute is interpolated with one gather. Texel
(row r, col c) has its centre at u = (c + .5)/R, v = (r + .5)/R (image convention, row 0 = v 0 = forehead).

The landmark frame (:func:`landmark_frame`) places the mean face in 2-D: origin between the eye centres, unit =
the distance between the eye centres, y up. Patch *zones* (where the paper's two models draw their patches) are
bands of it:

- ``forehead``: the upper face, frame y ≥ −0.55 (forehead, brows, eyes, upper nose and cheeks);
- ``mouth``: the lower face, frame y ≤ −0.30 (lower nose, cheeks, mouth, chin);
- ``face``: the whole chart.

They overlap in a band around the nose like the paper's (rows 1856–2431 of 4096). The anatomical regions of
:mod:`fds.facemodel.regions` (``cheeks``, ``nose``, …) are classified in the same frame; its ``zone_mask``
takes either kind of name.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from fds.facemodel.model import FaceModel

#: Patch zones in landmark-frame y (eye-distance units, y up): (lowest y, highest y).
ZONES: dict[str, tuple[float, float]] = {
    "forehead": (-0.55, np.inf),
    "mouth": (-np.inf, -0.30),
    "face": (-np.inf, np.inf),
}


@dataclass(frozen=True, eq=False)
class UVChart:
    """Texel lookup of one face model's UV chart at resolution ``R`` (row 0 = v 0 = top = forehead)."""

    fm: FaceModel
    resolution: int
    tri_id: np.ndarray  # [R,R] int64 triangle index, −1 outside the chart
    bary: np.ndarray  # [R,R,3] float32 barycentric weights of the triangle's 3 vertices (0 outside)
    frame_xy: np.ndarray  # [R,R,2] float32 mean-face position in the landmark frame (eye-distance units)
    frame_unit_mm: float  # mm per landmark-frame unit on the mean face
    landmarks_frame: dict[int, np.ndarray]  # iBUG point (1-based) → [2] position in the landmark frame

    @property
    def covered(self) -> np.ndarray:
        """``bool [R,R]``: texel centre inside the chart."""
        return self.tri_id >= 0

    def interpolate(self, attr: np.ndarray) -> np.ndarray:
        """Per-vertex ``attr [V,C]`` → ``[R,R,C]`` float32 (0 outside the chart)."""
        attr = np.asarray(attr, np.float32)
        if attr.ndim != 2 or attr.shape[0] != self.fm.num_vertices:
            raise ValueError(f"attr must be [V={self.fm.num_vertices}, C], got {attr.shape}")
        tri = self.fm.triangles[np.maximum(self.tri_id, 0)]  # [R,R,3]
        out = np.einsum("rsk,rskc->rsc", self.bary, attr[tri])
        out[~self.covered] = 0
        return out

    def zone_mask(self, name: str) -> np.ndarray:
        """``bool [R,R]`` texels of patch zone ``name`` (:data:`ZONES`; anatomical regions:
        :func:`fds.facemodel.regions.zone_mask`)."""
        if name not in ZONES:
            raise ValueError(f"unknown patch zone {name!r}; use one of {sorted(ZONES)} (anatomical regions: "
                             "fds.facemodel.regions.zone_mask)")
        lo, hi = ZONES[name]
        y = self.frame_xy[..., 1]
        return self.covered & (y >= lo) & (y <= hi)

    def texel_mm(self, position_mm: np.ndarray) -> tuple[float, float]:
        """Median surface length (mm) of one texel step along columns and rows, from a position map
        ``[R,R,3]`` (used where a single metric texel size is needed, e.g. displacement → normals)."""
        ok = self.covered[:, 1:] & self.covered[:, :-1]
        du = np.linalg.norm(np.diff(position_mm, axis=1), axis=-1)[ok]
        ok = self.covered[1:] & self.covered[:-1]
        dv = np.linalg.norm(np.diff(position_mm, axis=0), axis=-1)[ok]
        return float(np.median(du)), float(np.median(dv))


def landmark_mean(points: dict[int, np.ndarray], ids: range | list[int]) -> np.ndarray | None:
    """Mean position of the iBUG points ``ids`` (1-based) that ``points`` has; None when it has none of them."""
    have = [points[i] for i in ids if i in points]
    return np.mean(have, 0) if have else None


def landmark_frame(fm: FaceModel) -> tuple[np.ndarray, np.ndarray, float, dict[int, np.ndarray]]:
    """The iBUG landmark frame of ``fm``'s mean face seen from the front (model x, y in mm): ``(origin [2] mm,
    axes [2,2] rows = x̂, ŷ, unit mm, iBUG point (1-based) → 2D position in that frame)``. Origin between the eye
    centres, x̂ from the subject's right eye to the left, ŷ up, unit = the distance between the eye centres."""
    pts3 = fm.landmark_positions()
    right_eye, left_eye = landmark_mean(pts3, range(37, 43)), landmark_mean(pts3, range(43, 49))
    if right_eye is None or left_eye is None:
        raise ValueError(f"face model {fm.name!r} maps no eye landmarks (iBUG 37–48): cannot place regions")
    origin = (right_eye[:2] + left_eye[:2]) / 2
    x_axis = (left_eye[:2] - right_eye[:2]) / np.linalg.norm(left_eye[:2] - right_eye[:2])
    axes = np.stack([x_axis, np.array([-x_axis[1], x_axis[0]])])
    unit = float(np.linalg.norm(left_eye[:2] - right_eye[:2]))
    pts2 = {k: axes @ (p[:2] - origin) / unit for k, p in pts3.items()}
    return origin, axes, unit, pts2


def uv_chart(fm: FaceModel, resolution: int) -> UVChart:
    """The cached :class:`UVChart` of ``fm`` at ``resolution`` texels (per process)."""
    if int(resolution) < 8:
        raise ValueError(f"UV resolution must be ≥ 8 texels, got {resolution}")
    return _uv_chart(fm, int(resolution))


@lru_cache(maxsize=8)
def _uv_chart(fm: FaceModel, r: int) -> UVChart:
    import torch

    from fds.render import rasterize_uv

    with torch.no_grad():
        rast = rasterize_uv(torch.from_numpy(fm.uv.astype(np.float32)),
                            torch.from_numpy(fm.uv_triangles.astype(np.int32)), (r, r), backend="torch")[0]
    tri_id = rast[..., 3].round().long().numpy() - 1  # [R,R], −1 outside the chart
    inside = tri_id >= 0
    u, v = rast[..., 0].numpy(), rast[..., 1].numpy()
    # fds.render's convention: attr = u·a0 + v·a1 + (1 − u − v)·a2 over the triangle's corners
    bary = np.stack([u, v, 1.0 - u - v], -1).astype(np.float32)
    bary[~inside] = 0
    origin, axes, unit, pts = landmark_frame(fm)
    chart = UVChart(fm, r, tri_id, bary, np.zeros((r, r, 2), np.float32), float(unit), pts)
    xy = chart.interpolate(fm.mean_mm[:, :2])
    frame = ((xy.reshape(-1, 2) - origin) @ axes.T / unit).reshape(r, r, 2).astype(np.float32)
    frame[~inside] = np.nan
    return UVChart(fm, r, tri_id, bary, frame, float(unit), pts)
