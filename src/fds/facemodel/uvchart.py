"""A face model's UV chart rasterised once per resolution: texel → (triangle, barycentrics), fast interpolation.

The chart is rasterised with ``fds.render.rasterize_uv`` (the project's one rasteriser, any UV layout, seams
included), cached per process, and then any per-vertex attribute is interpolated with one gather. Texel
(row r, col c) has its centre at u = (c + .5)/R, v = (r + .5)/R (image convention, row 0 = v 0 = forehead).

Patch *zones* (where the paper's two models draw their patches) are defined here in the iBUG landmark frame
of ``fds.facemodel.regions.landmark_frame`` (origin between the eye centres, unit = eye distance, y up):

- ``forehead``: the upper face, frame y ≥ −0.55 (forehead, brows, eyes, upper nose and cheeks);
- ``mouth``: the lower face, frame y ≤ −0.30 (lower nose, cheeks, mouth, chin);
- ``face``: the whole chart.

They overlap in a band around the nose like the paper's (rows 1856–2431 of 4096). Any anatomical region of
``FaceModel.region_masks`` (``cheeks``, ``nose``, …) can also be named.
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
        """``bool [R,R]`` texels of patch zone ``name`` (see module doc) or of an anatomical region."""
        if name in ZONES:
            lo, hi = ZONES[name]
            y = self.frame_xy[..., 1]
            return self.covered & (y >= lo) & (y <= hi)
        masks = self.fm.region_masks(self.resolution)
        if name not in masks:
            raise ValueError(f"unknown UV region {name!r}; use one of {sorted(set(ZONES) | set(masks))}")
        return masks[name]

    def texel_mm(self, position_mm: np.ndarray) -> tuple[float, float]:
        """Median surface length (mm) of one texel step along columns and rows, from a position map
        ``[R,R,3]`` (used where a single metric texel size is needed, e.g. displacement → normals)."""
        ok = self.covered[:, 1:] & self.covered[:, :-1]
        du = np.linalg.norm(np.diff(position_mm, axis=1), axis=-1)[ok]
        ok = self.covered[1:] & self.covered[:-1]
        dv = np.linalg.norm(np.diff(position_mm, axis=0), axis=-1)[ok]
        return float(np.median(du)), float(np.median(dv))


def uv_chart(fm: FaceModel, resolution: int) -> UVChart:
    """The cached :class:`UVChart` of ``fm`` at ``resolution`` texels (per process)."""
    if int(resolution) < 8:
        raise ValueError(f"UV resolution must be ≥ 8 texels, got {resolution}")
    return _uv_chart(fm, int(resolution))


@lru_cache(maxsize=8)
def _uv_chart(fm: FaceModel, r: int) -> UVChart:
    import torch

    from fds.facemodel.regions import landmark_frame
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
