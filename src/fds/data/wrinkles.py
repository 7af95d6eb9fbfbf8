"""Anatomically placed wrinkle primitives and skin micro-relief, as a displacement map in mm along the normal.

Placement happens in the iBUG landmark frame of ``fds.facemodel.uvchart.landmark_frame`` (origin between
the eye centres, unit = eye distance ≈ 64 mm on the SFM mean face, x toward the subject's left, y up): each
wrinkle is a curve in that frame, anchored to the model's landmarks (brows, eye corners, nose wings, mouth
corners). The curve is lifted onto the sample's surface (texel positions in mm) and each texel's 3-D distance
to it drives a groove profile, so widths and depths are metric.

Depth ranges (mm, grooves are negative displacement), chosen from skin-profilometry figures:

============================  =================  ===================  ===========================
kind                          class              depth (mm)           half-width σ (mm)
============================  =================  ===================  ===========================
forehead furrows              furrow             0.2 – 1.0            0.35 – 0.9
glabellar (frown) lines       furrow             0.15 – 0.8           0.3 – 0.7
crow's feet                   fine → furrow      0.05 – 0.5           0.2 – 0.5
under-eye lines               fine               0.05 – 0.2           0.2 – 0.4
nasolabial folds              fold               0.3 – 2.0            1.2 – 2.5 (+ cheek bulge)
marionette lines              furrow             0.1 – 0.9            0.6 – 1.2
perioral (lip) lines          fine               0.05 – 0.2           0.12 – 0.25
scattered fine lines          fine               0.03 – 0.12          0.15 – 0.3
cheek creases (option)        fine → furrow      0.1 – 0.7            0.3 – 0.8
pores                         micro-relief       0.02 – 0.08          0.04 – 0.10 (radius)
skin texture (noise)          micro-relief       RMS 0.005 – 0.02     correlation 0.15 – 0.4
============================  =================  ===================  ===========================

A wrinkle's *strength* s ∈ [0, 1] = static part (age) + dynamic part (expression activation); depth =
lo + (hi − lo)·s, so forehead furrows deepen with raised brows and crow's feet with smiling; lines whose
strength is below ~0.08 are not drawn (a young neutral face is nearly smooth).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

#: Depth ranges (mm) per wrinkle kind: (shallowest, deepest); see the module table.
DEPTH_MM: dict[str, tuple[float, float]] = {
    "forehead": (0.2, 1.0),
    "glabella": (0.15, 0.8),
    "crows_feet": (0.05, 0.5),
    "under_eye": (0.05, 0.2),
    "nasolabial": (0.3, 2.0),
    "marionette": (0.1, 0.9),
    "perioral": (0.05, 0.2),
    "fine": (0.03, 0.12),
    "cheek": (0.1, 0.7),
}
#: Groove half-widths σ (mm) per kind.
WIDTH_MM: dict[str, tuple[float, float]] = {
    "forehead": (0.35, 0.9),
    "glabella": (0.3, 0.7),
    "crows_feet": (0.2, 0.5),
    "under_eye": (0.2, 0.4),
    "nasolabial": (1.2, 2.5),
    "marionette": (0.6, 1.2),
    "perioral": (0.12, 0.25),
    "fine": (0.15, 0.3),
    "cheek": (0.3, 0.8),
}
ACTIVATIONS = ("brow_raise", "frown", "smile", "nose_wrinkle", "lip_press", "mouth_down")

# expression name (lower case, substring match) → activation weights; covers SFM's six emotions and
# ARKit-style names (ICT). Unknown names contribute nothing.
_EXPR_TO_ACT: dict[str, dict[str, float]] = {
    "surprise": {"brow_raise": 1.0},
    "fear": {"brow_raise": 0.6, "frown": 0.4},
    "sadness": {"brow_raise": 0.3, "frown": 0.4, "mouth_down": 1.0},
    "anger": {"frown": 1.0, "lip_press": 1.0, "nose_wrinkle": 0.3},
    "disgust": {"frown": 0.6, "nose_wrinkle": 1.0, "mouth_down": 0.5},
    "happiness": {"smile": 1.0},
    "browinnerup": {"brow_raise": 1.0},
    "browouterup": {"brow_raise": 0.7},
    "browdown": {"frown": 1.0},
    "mouthsmile": {"smile": 1.0},
    "cheeksquint": {"smile": 0.6},
    "nosesneer": {"nose_wrinkle": 1.0},
    "mouthpress": {"lip_press": 1.0},
    "mouthpucker": {"lip_press": 1.0},
    "mouthfrown": {"mouth_down": 1.0},
}


def expression_activations(expr_names: tuple[str, ...], expr_coeffs: np.ndarray) -> dict[str, float]:
    """Muscle activations in [0, 1] (brow raise, frown, smile, …) from named expression weights."""
    act = dict.fromkeys(ACTIVATIONS, 0.0)
    for name, w in zip(expr_names, np.asarray(expr_coeffs, np.float64), strict=False):
        key = name.lower().replace("_", "")
        for pattern, weights in _EXPR_TO_ACT.items():
            if pattern in key:
                for a, k in weights.items():
                    act[a] += k * max(float(w), 0.0)
    return {a: float(np.clip(v, 0.0, 1.0)) for a, v in act.items()}


@dataclass
class Wrinkle:
    """One groove: a curve in the landmark frame with a depth (mm, > 0 = deeper groove) and half-width."""

    kind: str
    curve: np.ndarray  # [N,2] landmark-frame points, densely sampled
    depth_mm: float
    width_mm: float
    bulge: float = 0.0  # height of a one-sided ridge (fraction of depth) on the side ``bulge_side`` points to
    bulge_side: float = 0.0  # +1: ridge where frame x grows away from the midline (cheek side), 0: none

    def as_dict(self) -> dict:
        return {"kind": self.kind, "depth_mm": round(self.depth_mm, 4), "width_mm": round(self.width_mm, 4),
                "start": np.round(self.curve[0], 3).tolist(), "end": np.round(self.curve[-1], 3).tolist()}


def _polyline(points: np.ndarray, step: float = 0.004) -> np.ndarray:
    """Resample a polyline [K,2] to points ``step`` frame units apart (≈ 0.26 mm on the SFM)."""
    seg = np.linalg.norm(np.diff(points, axis=0), axis=1)
    s = np.concatenate([[0], np.cumsum(seg)])
    t = np.linspace(0, s[-1], max(int(s[-1] / step), 2))
    return np.stack([np.interp(t, s, points[:, 0]), np.interp(t, s, points[:, 1])], -1)


def _bezier(p0, p1, p2, n: int = 24) -> np.ndarray:
    t = np.linspace(0, 1, n)[:, None]
    return (1 - t) ** 2 * np.asarray(p0) + 2 * (1 - t) * t * np.asarray(p1) + t**2 * np.asarray(p2)


def _pick(rng: np.random.Generator, kind: str, strength: float) -> tuple[float, float]:
    lo, hi = DEPTH_MM[kind]
    wlo, whi = WIDTH_MM[kind]
    depth = (lo + (hi - lo) * strength) * rng.uniform(0.85, 1.15)
    width = rng.uniform(wlo, whi) * (0.8 + 0.4 * strength)
    return float(np.clip(depth, lo * 0.85, hi)), float(width)


def _lm(pts: dict[int, np.ndarray], k: int, default: tuple[float, float]) -> np.ndarray:
    return np.asarray(pts.get(k, default), np.float64)


def wrinkle_layout(
    rng: np.random.Generator, age: float, act: dict[str, float], pts: dict[int, np.ndarray], forehead_top: float
) -> list[Wrinkle]:
    """Sample the wrinkle curves of one face: ``age`` in [0, 1] (≈ 20 → 80 years), activations from
    :func:`expression_activations`, ``pts`` the landmark-frame iBUG points, ``forehead_top`` the highest
    frame y of the chart's forehead (eye-distance units)."""
    out: list[Wrinkle] = []
    static = float(np.clip(age, 0, 1)) ** 1.3

    def strength(static_w: float, dyn: float) -> float:
        return float(np.clip(static_w * static + dyn + rng.normal(0, 0.04), 0, 1))

    brow_y = max(_lm(pts, k, (0, 0.3))[1] for k in (19, 20, 21, 24, 25, 26))
    # forehead furrows: arched horizontal lines, broken into pieces, between brows and hairline
    s = strength(0.8, 0.7 * act["brow_raise"])
    n_lines = int(round(1 + 4 * s + rng.uniform(-0.5, 0.5)))
    if s > 0.08:
        lo_y, hi_y = brow_y + 0.17, min(forehead_top - 0.12, brow_y + 0.75)
        for y0 in np.linspace(lo_y, hi_y, max(n_lines, 1)) + rng.normal(0, 0.02, max(n_lines, 1)):
            half = rng.uniform(0.35, 0.8)
            x = np.linspace(-half, half, 40)
            wave = 0.012 * np.sin(x * rng.uniform(4, 9) + rng.uniform(0, 6.3))
            curve = np.stack([x, y0 + rng.uniform(0.05, 0.18) * x**2 + wave], -1)
            cuts = np.sort(rng.choice(np.arange(6, 34), size=int(rng.integers(0, 3)), replace=False))
            for piece in np.split(curve, cuts):
                if len(piece) >= 5:
                    d, w = _pick(rng, "forehead", s * rng.uniform(0.7, 1.0))
                    out.append(Wrinkle("forehead", _polyline(piece), d, w))
    # glabellar lines: near-vertical between the brows, from frowning
    s = strength(0.45, 0.9 * act["frown"])
    if s > 0.08:
        for side in (-1, 1):
            if rng.random() < 0.85:
                x0 = side * rng.uniform(0.05, 0.13)
                p = np.array([[x0 + side * rng.uniform(0.0, 0.04), 0.12], [x0, brow_y + rng.uniform(0.08, 0.2)]])
                out.append(Wrinkle("glabella", _polyline(p), *_pick(rng, "glabella", s)))
    for side, corner_id, default in ((-1, 37, (-0.72, 0.02)), (1, 46, (0.72, 0.01))):
        corner = _lm(pts, corner_id, default)
        # crow's feet: a fan from the outer eye corner, deepened by smiling
        s = strength(0.7, 0.8 * act["smile"])
        if s > 0.08:
            for ang in np.deg2rad(np.sort(rng.uniform(-40, 35, int(2 + round(4 * s))))):
                start = corner + side * 0.06 * np.array([np.cos(ang), 0]) + [0, 0.06 * np.sin(ang)]
                length = rng.uniform(0.1, 0.25)
                direction = np.array([side * np.cos(ang), np.sin(ang)])
                bend = np.array([0, rng.uniform(-0.03, 0.03)])
                curve = _bezier(start, start + direction * length / 2 + bend, start + direction * length)
                out.append(Wrinkle("crows_feet", _polyline(curve), *_pick(rng, "crows_feet", s)))
        # under-eye lines: arcs under the lower lid
        s = strength(0.8, 0.3 * act["smile"])
        eye = np.mean([_lm(pts, k, default) for k in ((37, 38, 39, 40, 41, 42) if side < 0
                                                      else (43, 44, 45, 46, 47, 48))], 0)
        for i in range(int(round(2 * s + rng.uniform(-0.3, 0.5)))):
            y = eye[1] - 0.13 - 0.07 * i + rng.normal(0, 0.01)
            p = _bezier([eye[0] - 0.2, y + 0.03], [eye[0], y - 0.05], [eye[0] + 0.2, y + 0.03])
            out.append(Wrinkle("under_eye", _polyline(p), *_pick(rng, "under_eye", s)))
    for side, wing_id, mouth_id, wing_d, mouth_d in ((-1, 32, 49, (-0.19, -0.74), (-0.37, -1.08)),
                                                     (1, 36, 55, (0.19, -0.74), (0.37, -1.08))):
        wing, corner = _lm(pts, wing_id, wing_d), _lm(pts, mouth_id, mouth_d)
        # nasolabial fold: nose wing → beside the mouth corner, bowed outward, with a cheek bulge
        s = strength(0.75, 0.6 * act["smile"] + 0.15)
        start = wing + [side * 0.07, 0.06]
        end = corner + [side * rng.uniform(0.06, 0.12), -rng.uniform(0.05, 0.2)]
        ctrl = (start + end) / 2 + [side * rng.uniform(0.05, 0.12), 0]
        d, w = _pick(rng, "nasolabial", s)
        out.append(Wrinkle("nasolabial", _polyline(_bezier(start, ctrl, end)), d, w, bulge=0.45, bulge_side=side))
        # marionette lines: down from the mouth corner
        s = strength(0.9, 0.6 * act["mouth_down"]) - 0.15
        if s > 0.08:
            start = corner + [side * 0.03, -0.04]
            end = start + [side * rng.uniform(0.0, 0.08), -rng.uniform(0.25, 0.4)]
            out.append(Wrinkle("marionette", _polyline(np.array([start, end])), *_pick(rng, "marionette", s)))
    # perioral lines: short vertical lines above and below the lips
    s = strength(0.9, 0.5 * act["lip_press"]) - 0.2
    top = _lm(pts, 52, (0, -0.97))[1]
    bottom = _lm(pts, 58, (0, -1.22))[1]
    for _ in range(int(round(12 * max(s, 0)))):
        x_line = rng.uniform(-0.3, 0.3)
        if rng.random() < 0.7:
            y0, y1 = top + 0.01, top + rng.uniform(0.06, 0.13)
        else:
            y0, y1 = bottom - 0.01, bottom - rng.uniform(0.05, 0.1)
        out.append(Wrinkle("perioral", _polyline(np.array([[x_line, y0], [x_line + rng.normal(0, 0.01), y1]])),
                           *_pick(rng, "perioral", s)))
    # scattered fine lines (cheeks, temples), more with age
    for _ in range(int(rng.poisson(25 * static))):
        c = np.array([rng.uniform(-1.0, 1.0), rng.uniform(-1.3, 0.9)])
        ang = rng.uniform(0, np.pi)
        half_vec = rng.uniform(0.03, 0.1) * np.array([np.cos(ang), np.sin(ang)])
        out.append(Wrinkle("fine", _polyline(np.array([c - half_vec, c + half_vec])), *_pick(rng, "fine", static)))
    return out


def cheek_creases(rng: np.random.Generator, age: float, act: dict[str, float],
                  pts: dict[int, np.ndarray]) -> list[Wrinkle]:
    """The creases of an ageing cheek, beside the nasolabial fold and under the cheekbone (an option of the
    generators, :class:`fds.data.procedural.ProceduralScanGenerator` ``cheek_creases``): long lines roughly
    parallel to the fold, deepened a little by smiling, and shorter lines crossing them. None below middle age.

    ``age`` in [0, 1], ``act`` from :func:`expression_activations`, ``pts`` the landmark-frame iBUG points (frame
    units: eye distances, x toward the subject's left, y up). Draws only from ``rng``, so the other wrinkles of
    :func:`wrinkle_layout` stay the same with or without them."""
    out: list[Wrinkle] = []
    static = float(np.clip(age, 0, 1)) ** 1.3
    s = float(np.clip(static + 0.35 * act["smile"] + rng.normal(0, 0.04), 0, 1)) - 0.3
    if s <= 0.05:
        return out
    for side, wing_id, mouth_id, eye_id, wing_d, mouth_d, eye_d in (
            (-1, 32, 49, 37, (-0.19, -0.74), (-0.37, -1.08), (-0.72, 0.02)),
            (1, 36, 55, 46, (0.19, -0.74), (0.37, -1.08), (0.72, 0.01))):
        wing, corner, eye = _lm(pts, wing_id, wing_d), _lm(pts, mouth_id, mouth_d), _lm(pts, eye_id, eye_d)
        fold = corner - wing  # the nasolabial fold's direction, down and outward
        fold_dir = fold / max(float(np.linalg.norm(fold)), 1e-6)
        outward = np.array([-fold_dir[1], fold_dir[0]])  # across the fold, towards the ear
        outward = outward if outward[0] * side > 0 else -outward
        # long creases: parallel to the fold, further out on the cheek, from under the cheekbone to the jaw
        for _ in range(int(round(7 * s + rng.uniform(-0.5, 0.5)))):
            offset = rng.uniform(0.1, 0.6)
            start = wing + outward * offset + np.array([0.0, rng.uniform(0.05, 0.35)])
            start[1] = min(start[1], eye[1] - 0.3)
            ang = rng.normal(0, np.deg2rad(15))
            c, sn = np.cos(ang), np.sin(ang)
            direction = np.array([c * fold_dir[0] - sn * fold_dir[1], sn * fold_dir[0] + c * fold_dir[1]])
            length = rng.uniform(0.25, 0.7)
            bow = outward * rng.uniform(-0.04, 0.06)
            curve = _bezier(start, start + direction * length / 2 + bow, start + direction * length)
            cuts = np.sort(rng.choice(np.arange(5, 19), size=int(rng.integers(0, 2)), replace=False))
            strength = s * rng.uniform(0.6, 1.0)
            for piece in np.split(curve, cuts):
                if len(piece) >= 4:
                    out.append(Wrinkle("cheek", _polyline(piece), *_pick(rng, "cheek", strength)))
        # short crossing lines over the same cheek: fainter, at a steep angle to the long ones
        for _ in range(int(rng.poisson(8 * s))):
            centre = wing + outward * rng.uniform(0.15, 0.55) + fold_dir * rng.uniform(0.0, 0.5)
            ang = np.arctan2(fold_dir[1], fold_dir[0]) + side * rng.uniform(np.deg2rad(50), np.deg2rad(110))
            half = rng.uniform(0.04, 0.1) * np.array([np.cos(ang), np.sin(ang)])
            out.append(Wrinkle("cheek", _polyline(np.array([centre - half, centre + half])),
                               *_pick(rng, "cheek", 0.5 * s * rng.uniform(0.5, 1.0))))
    return out


def render_wrinkles(
    wrinkles: list[Wrinkle], frame_xy: np.ndarray, position_mm: np.ndarray, valid: np.ndarray,
    frame_unit_mm: float,
) -> np.ndarray:
    """Sum the wrinkles' profiles into a displacement map ``[R,R]`` in mm (0 where not ``valid``).

    ``frame_xy [R,R,2]`` landmark-frame coordinates of each texel (anatomical place), ``position_mm
    [R,R,3]`` the surface the widths are measured on. Cross-section: −d·exp(−r²/σ²) + a small raised
    shoulder; along the curve the depth tapers smoothly to 0 over the last 15 % at each end.
    """
    r = frame_xy.shape[0]
    disp = np.zeros((r, r), np.float64)
    ok = valid & np.isfinite(frame_xy[..., 0])
    rows, cols = np.nonzero(ok)
    fx, fy = frame_xy[rows, cols, 0], frame_xy[rows, cols, 1]
    lookup = cKDTree(np.stack([fx, fy], -1))
    for wr in wrinkles:
        reach_mm = 4.0 * wr.width_mm * (2.0 if wr.bulge else 1.0)
        pad = reach_mm / frame_unit_mm * 1.5
        lo, hi = wr.curve.min(0) - pad, wr.curve.max(0) + pad
        sel = np.nonzero((fx >= lo[0]) & (fx <= hi[0]) & (fy >= lo[1]) & (fy <= hi[1]))[0]
        if len(sel) == 0:
            continue
        # lift the curve onto the surface: the position of the texel nearest to each curve point
        dist_f, nearest = lookup.query(wr.curve)
        keep = dist_f < 0.03
        if keep.sum() < 2:
            continue
        curve_mm = position_mm[rows[nearest[keep]], cols[nearest[keep]]]
        param = np.linspace(0, 1, len(wr.curve))[keep]
        p_mm = position_mm[rows[sel], cols[sel]]
        dist, idx = cKDTree(curve_mm).query(p_mm, distance_upper_bound=reach_mm)
        hit = np.isfinite(dist)
        sel, dist, idx = sel[hit], dist[hit], idx[hit]
        t = param[idx]
        taper = np.clip(np.minimum(t, 1 - t) / 0.15, 0, 1)
        taper = taper * taper * (3 - 2 * taper)
        w = wr.width_mm
        prof = -np.exp(-((dist / w) ** 2)) + 0.12 * np.exp(-((dist / (2.5 * w)) ** 2))
        if wr.bulge:
            cx = wr.curve[keep][idx, 0]
            lateral = np.sign(fx[sel] - cx) == np.sign(wr.bulge_side)
            prof = prof + lateral * wr.bulge * np.exp(-(((dist - 1.8 * w) / (1.3 * w)) ** 2))
        disp[rows[sel], cols[sel]] += wr.depth_mm * taper * prof
    return disp.astype(np.float32)


def micro_relief(
    rng: np.random.Generator, valid: np.ndarray, pore_density: np.ndarray, texel_mm: float, age: float
) -> np.ndarray:
    """Pores and fine skin texture ``[R,R]`` in mm: Poisson pits (``pore_density [R,R]`` per mm²) of depth
    0.02–0.08 mm and radius 0.04–0.1 mm, plus band-limited noise of RMS 0.005–0.02 mm (more with age)."""
    r = valid.shape[0]
    p = np.clip(pore_density * texel_mm**2, 0, 1) * valid
    pits = (rng.random((r, r)) < p) * rng.uniform(0.02, 0.08, (r, r))
    radius_px = max(rng.uniform(0.04, 0.1) / texel_mm, 0.5)
    pores = -ndimage.gaussian_filter(pits, radius_px) * (2 * np.pi * radius_px**2)
    texture = np.zeros((r, r))
    for corr_mm, rms in ((rng.uniform(0.15, 0.25), 0.004 + 0.008 * age), (rng.uniform(0.3, 0.4), 0.003 + 0.006 * age)):
        n = ndimage.gaussian_filter(rng.standard_normal((r, r)), max(corr_mm / texel_mm, 0.5))
        texture += n / max(n.std(), 1e-12) * rms
    return ((pores + texture) * valid).astype(np.float32)
