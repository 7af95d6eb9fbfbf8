"""UV region masks (forehead, brows, eyes, nose, cheeks, mouth, chin) for any :class:`FaceModel`.

Each covered texel of the UV map is classified by where its point lies on the mean face seen from the front
(model x, y in mm), measured in the landmark frame of :func:`fds.facemodel.uvchart.landmark_frame` (origin
between the eye centres, unit = the distance between the eye centres, y up). Every covered texel gets exactly
one label, so the regions are disjoint and together form the ``face`` mask. Texel (row r, col c) has its centre
at u = (c + .5)/R, v = (r + .5)/R.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from fds.facemodel.model import FaceModel
from fds.facemodel.uvchart import ZONES, landmark_frame, landmark_mean, uv_chart

REGIONS = ("forehead", "brows", "eyes", "nose", "cheeks", "mouth", "chin")


def uv_attribute_map(fm: FaceModel, attr: np.ndarray, resolution: int) -> tuple[np.ndarray, np.ndarray]:
    """Linearly interpolate per-vertex ``attr [V,C]`` over the UV chart (see :mod:`fds.facemodel.uvchart`).

    Returns ``(values [R,R,C] float32, covered [R,R] bool)`` at texel centres; uncovered texels hold 0.
    """
    chart = uv_chart(fm, resolution)
    return chart.interpolate(attr), chart.covered


def classify(x: np.ndarray, y: np.ndarray, pts: dict[int, np.ndarray]) -> np.ndarray:
    """Region label (1-based index into :data:`REGIONS`) of points (x, y) in the landmark frame."""
    label = np.full(x.shape, REGIONS.index("cheeks") + 1, np.int8)

    def put(mask: np.ndarray, name: str, free: np.ndarray) -> np.ndarray:
        label[mask & free] = REGIONS.index(name) + 1
        return free & ~mask

    free = np.ones(x.shape, bool)
    # eyes: an ellipse around each eye, half-width from its corners
    for ids, outer, inner, side in ((range(37, 43), 37, 40, -0.5), (range(43, 49), 46, 43, 0.5)):
        centre = landmark_mean(pts, ids)
        centre = np.array([side, 0.0]) if centre is None else centre
        half = np.linalg.norm(pts[outer] - pts[inner]) / 2 if outer in pts and inner in pts else 0.22
        free = put(((x - centre[0]) / (half + 0.1)) ** 2 + ((y - centre[1]) / 0.17) ** 2 <= 1, "eyes", free)
    # brows: a band around the brow polyline (estimated above the eyes when the model maps no brows)
    brow_pts = [pts[i] for i in range(18, 28) if i in pts]
    if len(brow_pts) >= 2:
        brow = np.array(sorted(brow_pts, key=lambda p: p[0]))
        bx, by = brow[:, 0], brow[:, 1]
    else:
        bx, by = np.array([-0.8, 0.8]), np.array([0.32, 0.32])
    brow_y = np.interp(x, bx, by)
    in_x = (x >= bx.min() - 0.08) & (x <= bx.max() + 0.08)
    free = put((np.abs(y - brow_y) <= 0.12) & in_x, "brows", free)
    free = put(y > brow_y + 0.12, "forehead", free)
    # nose: a trapezoid from the bridge (eye line) down to just below the nostrils
    tip = pts.get(31, np.array([0.0, -0.55]))
    bottom_y = pts[34][1] if 34 in pts else tip[1] - 0.12
    alar = abs(pts[36][0] - pts[32][0]) / 2 if 32 in pts and 36 in pts else 0.22
    t = np.clip((0.05 - y) / max(0.05 - (bottom_y - 0.04), 1e-6), 0, 1)
    half_width = 0.12 + t * (alar + 0.08 - 0.12)
    free = put((y <= 0.05) & (y >= bottom_y - 0.04) & (np.abs(x - tip[0]) <= half_width), "nose", free)
    # mouth: an ellipse around the lips; chin: below it
    corners = [pts[i] for i in (49, 55) if i in pts]
    mouth_c = landmark_mean(pts, range(49, 69))
    mouth_c = np.array([0.0, -1.05]) if mouth_c is None else mouth_c
    half_w = np.linalg.norm(corners[1] - corners[0]) / 2 if len(corners) == 2 else 0.42
    half_h = np.linalg.norm(pts[52] - pts[58]) / 2 if 52 in pts and 58 in pts else 0.12
    a, b = half_w + 0.12, half_h + 0.12
    free = put(((x - mouth_c[0]) / a) ** 2 + ((y - mouth_c[1]) / b) ** 2 <= 1, "mouth", free)
    put((y < mouth_c[1]) & (np.abs(x - mouth_c[0]) <= a + 0.15), "chin", free)
    return label


def region_labels(fm: FaceModel, resolution: int) -> np.ndarray:
    """``int8 [R,R]``: 0 outside the UV chart, else 1 + index into :data:`REGIONS`."""
    return _region_labels_cached(fm, int(resolution)).copy()


@lru_cache(maxsize=16)
def _region_labels_cached(fm: FaceModel, resolution: int) -> np.ndarray:
    if resolution < 8:
        raise ValueError(f"region mask resolution must be ≥ 8 texels, got {resolution}")
    origin, axes, unit, pts = landmark_frame(fm)
    xy, covered = uv_attribute_map(fm, fm.mean_mm[:, :2], resolution)
    local = (xy.reshape(-1, 2) - origin) @ axes.T / unit
    labels = classify(local[:, 0], local[:, 1], pts).reshape(resolution, resolution)
    return np.where(covered, labels, 0).astype(np.int8)


def region_masks(fm: FaceModel, resolution: int) -> dict[str, np.ndarray]:
    """UV masks ``bool [R,R]`` (row 0 = v 0) for forehead, brows, eyes, nose, cheeks, mouth, chin, plus ``face``
    (the whole chart)."""
    labels = region_labels(fm, resolution)
    masks = {name: labels == i + 1 for i, name in enumerate(REGIONS)}
    masks["face"] = labels > 0
    return masks


def zone_mask(fm: FaceModel, resolution: int, name: str) -> np.ndarray:
    """``bool [R,R]`` texels of a patch zone (``forehead``, ``mouth``, ``face``: :data:`fds.facemodel.uvchart.ZONES`)
    or of an anatomical region (:data:`REGIONS`): what ``regions`` in the data and model configs may name."""
    if name in ZONES:
        return uv_chart(fm, resolution).zone_mask(name)
    masks = region_masks(fm, resolution)
    if name not in masks:
        raise ValueError(f"unknown UV region {name!r}; use one of {sorted(set(ZONES) | set(masks))}")
    return masks[name]
