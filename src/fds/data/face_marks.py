"""Colour-only marks painted into a UV albedo: eyebrows, stubble/beard, moles, hair strands, eyes, lip line.

In photos the strongest dark lines are often not grooves: eyebrow hairs, stubble, moles, strands of hair over
the forehead. A network that learns relief from albedo-free renders reads every such line as a wrinkle. These
marks change the albedo only, never the GT displacement, so the training pairs say "dark line, flat skin".
The eyes (iris, pupil, sclera, lash line) and the line between the lips are painted too, so that the face
detector and landmark model find a painted face the way they find a photographed one.

Placement is in the iBUG landmark frame of ``fds.facemodel.regions.landmark_frame`` (origin between the eye
centres, unit = eye distance ≈ 64 mm on the SFM, x toward the subject's left, y up); strokes are drawn
antialiased in texel space of the UV chart (row 0 = v 0 = forehead). Albedo is sRGB-encoded in [0, 1].
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree
from skimage.draw import line_aa

from fds.facemodel.uvchart import UVChart

#: Hair colours (sRGB, [0, 1]): black, dark brown, brown, dark blonde, grey, auburn.
HAIR_COLOURS = np.array([[0.05, 0.04, 0.035], [0.13, 0.08, 0.05], [0.26, 0.17, 0.10], [0.48, 0.37, 0.22],
                         [0.42, 0.41, 0.40], [0.36, 0.14, 0.07]], np.float32)
#: Iris colours (sRGB): brown, dark brown, hazel, blue-grey, green-grey.
IRIS_COLOURS = np.array([[0.30, 0.18, 0.09], [0.15, 0.09, 0.05], [0.38, 0.30, 0.15], [0.32, 0.40, 0.48],
                         [0.33, 0.38, 0.28]], np.float32)


@dataclass
class FrameToTexel:
    """Maps landmark-frame points to texel (row, col) of a chart (nearest covered texel centre)."""

    tree: cKDTree
    rows: np.ndarray
    cols: np.ndarray

    @classmethod
    def of(cls, chart: UVChart) -> FrameToTexel:
        rows, cols = np.nonzero(chart.covered & np.isfinite(chart.frame_xy[..., 0]))
        return cls(cKDTree(chart.frame_xy[rows, cols]), rows, cols)

    def __call__(self, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``xy [N,2]`` → (rows [N], cols [N], distance in frame units to the nearest covered texel [N])."""
        d, i = self.tree.query(np.asarray(xy, np.float64).reshape(-1, 2))
        return self.rows[i], self.cols[i], d


def _strokes(cover: np.ndarray, mapper: FrameToTexel, starts: np.ndarray, ends: np.ndarray, alpha: np.ndarray,
             width: int = 1) -> None:
    """Accumulate antialiased segments (frame coordinates) into the coverage map ``cover [R,R]`` in place."""
    ok = np.isfinite(starts).all(1) & np.isfinite(ends).all(1)
    starts, ends, alpha = starts[ok], ends[ok], alpha[ok]
    if len(starts) == 0:
        return
    r0, c0, d0 = mapper(starts)
    r1, c1, d1 = mapper(ends)
    r = cover.shape[0]
    for k in range(len(r0)):
        if d0[k] > 0.03 or d1[k] > 0.03:  # off the chart
            continue
        for off in range(width):
            rr, cc, val = line_aa(int(r0[k]) + off, int(c0[k]), int(r1[k]) + off, int(c1[k]))
            ok = (rr >= 0) & (rr < r) & (cc >= 0) & (cc < r)
            rr, cc, a = rr[ok], cc[ok], val[ok] * alpha[k]
            cover[rr, cc] = 1 - (1 - cover[rr, cc]) * (1 - a)


def _blend(albedo: np.ndarray, cover: np.ndarray, colour: np.ndarray) -> np.ndarray:
    c = np.clip(cover, 0, 1)[..., None]
    return albedo * (1 - c) + colour.reshape(1, 1, 3) * c


def _pt(pts: dict[int, np.ndarray], k: int, default) -> np.ndarray:
    return np.asarray(pts.get(k, default), np.float64)


def eyebrows(rng, pts, side: int, density: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hair segments of one brow (side −1 = subject's right, frame x < 0): (starts, ends, alpha)."""
    ids = range(18, 23) if side < 0 else range(23, 28)
    default = [(-0.75 + 0.12 * i, 0.30 + 0.03 * min(i, 4 - i)) for i in range(5)]
    default = default if side < 0 else [(-x, y) for x, y in default[::-1]]
    brow = np.array([_pt(pts, k, d) for k, d in zip(ids, default, strict=True)])
    brow = brow[np.argsort(brow[:, 0])]
    n = int(rng.uniform(150, 400) * density)
    t = rng.uniform(0, 1, n)
    seg = np.concatenate([[0], np.cumsum(np.linalg.norm(np.diff(brow, axis=0), axis=1))])
    s = t * seg[-1]
    root = np.stack([np.interp(s, seg, brow[:, 0]), np.interp(s, seg, brow[:, 1])], -1)
    medial = (1 - t) if side > 0 else t  # 1 at the inner end (near the nose)
    thickness = 0.035 + 0.04 * medial
    root[:, 1] += rng.uniform(-1, 1, n) * thickness - 0.01
    # hairs point up near the nose and outward (laterally) elsewhere
    ang = np.deg2rad(np.where(medial > 0.75, rng.uniform(60, 100, n), rng.uniform(5, 35, n)))
    direction = np.stack([side * np.cos(ang), np.sin(ang)], -1)
    length = rng.uniform(0.03, 0.07, n)
    return root, root + direction * length[:, None], rng.uniform(0.35, 0.85, n) * density


def paint_face_marks(rng: np.random.Generator, albedo: np.ndarray, chart: UVChart,
                     mapper: FrameToTexel | None = None) -> tuple[np.ndarray, dict]:
    """Paint eyebrows, eyes, lip line and (randomly) stubble/beard, moles and forehead hair strands into
    ``albedo [R,R,3]`` (sRGB in [0, 1]; ``chart`` at the same R). Returns (albedo, description)."""
    r = chart.resolution
    if albedo.shape[:2] != (r, r):
        raise ValueError(f"albedo is {albedo.shape[:2]} but the chart is {r}×{r}")
    mapper = mapper or FrameToTexel.of(chart)
    pts = chart.landmarks_frame
    out = albedo.astype(np.float32).copy()
    hair = HAIR_COLOURS[int(rng.integers(len(HAIR_COLOURS)))] * rng.uniform(0.85, 1.15, 3)
    info: dict = {"hair_colour": np.round(hair, 3).tolist()}

    # eyes: sclera, iris, pupil, lash line (colour only; the eyes are excluded from GT metrics anyway)
    iris_col = IRIS_COLOURS[int(rng.integers(len(IRIS_COLOURS)))]
    yy, xx = chart.frame_xy[..., 1], chart.frame_xy[..., 0]
    for ids, default in ((range(37, 43), (-0.5, 0.0)), (range(43, 49), (0.5, 0.0))):
        eye = np.array([_pt(pts, k, default) for k in ids])
        centre = eye.mean(0)
        half_w = max(np.ptp(eye[:, 0]) / 2, 0.15)
        half_h = max(np.ptp(eye[:, 1]) / 2, 0.05)
        e = ((xx - centre[0]) / half_w) ** 2 + ((yy - centre[1]) / half_h) ** 2
        sclera = np.clip((1 - e) * 4, 0, 1) * chart.covered
        out = _blend(out, 0.8 * np.nan_to_num(sclera), np.array([0.78, 0.72, 0.68], np.float32))
        gaze = centre + rng.normal(0, 0.02, 2)
        rad = np.hypot(xx - gaze[0], yy - gaze[1])
        inside = np.nan_to_num(sclera) > 0
        iris = np.clip((0.09 - rad) / 0.01, 0, 1) * inside
        out = _blend(out, np.nan_to_num(iris), iris_col)
        pupil = np.clip((0.035 - rad) / 0.008, 0, 1) * inside
        out = _blend(out, np.nan_to_num(pupil), np.array([0.03, 0.03, 0.03], np.float32))
        lash = np.clip(1 - np.abs(np.sqrt(np.nan_to_num(e, nan=9.0)) - 1) / 0.12, 0, 1) * (yy > centre[1] - 0.01)
        out = _blend(out, 0.75 * np.nan_to_num(lash) * chart.covered, np.array([0.05, 0.04, 0.04], np.float32))

    # line between the lips
    inner = np.array([_pt(pts, k, d) for k, d in zip(range(61, 69), [(-0.3, -1.1), (-0.12, -1.08), (0, -1.08),
                                                                        (0.12, -1.08), (0.3, -1.1), (0.12, -1.12),
                                                                        (0, -1.12), (-0.12, -1.12)], strict=True)])
    upper, lower = inner[:5], np.concatenate([inner[4:], inner[:1]])
    mid = (upper + lower[::-1]) / 2
    cover = np.zeros((r, r), np.float32)
    _strokes(cover, mapper, mid[:-1], mid[1:], np.full(len(mid) - 1, 0.8), width=2)
    out = _blend(out, cover, np.array([0.20, 0.08, 0.07], np.float32))

    # eyebrows
    cover = np.zeros((r, r), np.float32)
    density = float(rng.uniform(0.5, 1.2))
    for side in (-1, 1):
        a, b, alpha = eyebrows(rng, pts, side, density)
        _strokes(cover, mapper, a, b, alpha)
    out = _blend(out, cover, hair)
    info["brow_density"] = round(density, 3)

    # stubble or beard: dots/short strokes on the lower face outside the lips, plus a shadow tint
    kind = rng.choice(["none", "stubble", "beard"], p=[0.55, 0.3, 0.15])
    info["beard"] = str(kind)
    if kind != "none":
        nose_y = _pt(pts, 34, (0, -0.7))[1]
        mouth = np.array([_pt(pts, k, (0, -1.1)) for k in range(49, 61)])
        mc, mw, mh = mouth.mean(0), np.ptp(mouth[:, 0]) / 2 + 0.04, np.ptp(mouth[:, 1]) / 2 + 0.03
        lips = ((xx - mc[0]) / mw) ** 2 + ((yy - mc[1]) / mh) ** 2 < 1
        below = yy < nose_y - 0.03
        jaw_side = np.abs(xx) < rng.uniform(0.75, 1.0)
        noise = ndimage.gaussian_filter(rng.standard_normal((r, r)), r / 64)
        edge = noise / max(noise.std(), 1e-9) * 0.06
        area = np.nan_to_num((yy + edge < nose_y - 0.03) & below & jaw_side & ~lips) * chart.covered
        area = ndimage.gaussian_filter(area.astype(np.float32), r / 256)
        shade = float(rng.uniform(0.05, 0.25))
        out = out * (1 - shade * area[..., None]) + shade * area[..., None] * np.array([0.25, 0.27, 0.30])
        rows, cols = np.nonzero(area > 0.5)
        n = int(len(rows) * (rng.uniform(0.04, 0.12) if kind == "stubble" else rng.uniform(0.15, 0.3)))
        pick = rng.integers(0, len(rows), n) if len(rows) else np.zeros(0, int)
        start = chart.frame_xy[rows[pick], cols[pick]]
        ang = rng.uniform(-np.pi, np.pi, n) if kind == "stubble" else -np.pi / 2 + rng.normal(0, 0.4, n)
        length = rng.uniform(0.004, 0.012, n) if kind == "stubble" else rng.uniform(0.02, 0.06, n)
        cover = np.zeros((r, r), np.float32)
        _strokes(cover, mapper, start, start + np.stack([np.cos(ang), np.sin(ang)], -1) * length[:, None],
                 rng.uniform(0.3, 0.8, n))
        out = _blend(out, cover, hair)
        info["beard_hairs"] = n

    # moles: small dark-brown discs with soft edges (anywhere on the skin, not in eyes or lips)
    n_moles = int(rng.poisson(1.5))
    rows, cols = np.nonzero(chart.covered)
    moles = []
    for _ in range(n_moles):
        k = int(rng.integers(len(rows)))
        radius = rng.uniform(1.0, 3.5)  # texels at 1024² ≈ 0.2–0.9 mm; scaled with R below
        radius *= r / 1024
        rr, cc = np.ogrid[:r, :r]
        d = np.hypot(rr - rows[k], cc - cols[k])
        disc = np.clip((radius + 0.7 - d) / 1.4, 0, 1) * rng.uniform(0.5, 0.9)
        out = _blend(out, disc.astype(np.float32), np.array([0.25, 0.14, 0.09]) * rng.uniform(0.7, 1.2))
        moles.append([int(rows[k]), int(cols[k])])
    info["moles"] = moles

    # strands of hair over the forehead: thin curves from the hairline down
    if rng.random() < 0.4:
        top = float(np.nanpercentile(yy[chart.covered], 99))
        n = int(rng.integers(3, 40))
        x0 = rng.uniform(-0.9, 0.9, n)
        length = rng.uniform(0.15, 0.6, n)
        bend = rng.normal(0, 0.12, n)
        cover = np.zeros((r, r), np.float32)
        for k in range(n):
            t = np.linspace(0, 1, 16)
            xs = x0[k] + bend[k] * t**2 + rng.normal(0, 0.01) * t
            ys = top + 0.02 - length[k] * t
            seg = np.stack([xs, ys], -1)
            _strokes(cover, mapper, seg[:-1], seg[1:], np.full(15, rng.uniform(0.5, 0.95)),
                     width=int(rng.integers(1, 3)))
        out = _blend(out, cover, hair * rng.uniform(0.6, 1.0))
        info["forehead_strands"] = n
    else:
        info["forehead_strands"] = 0
    return np.clip(out, 0, 1).astype(np.float32), info


def marks_coverage(rng: np.random.Generator, chart: UVChart,
                   mapper: FrameToTexel | None = None) -> tuple[np.ndarray, dict]:
    """Coverage ``float32 [R,R]`` in [0, 1] of the marks :func:`paint_face_marks` paints with this ``rng`` state
    (``rng`` itself is not advanced), in the chart's texels: 1 − ∏(1 − cᵢ) over every stroke, disc and tint;
    and the marks' description (the same dict :func:`paint_face_marks` returns).

    Every mark is an affine blend ``a·(1 − c) + colour·c`` and the random draws do not depend on the albedo, so
    painting a white and a black albedo with the same draws gives ``∏(1 − cᵢ)`` as their difference. Unlike the
    albedo change, coverage does not depend on how dark the skin under a mark is: it says where the photo shows
    a line the GT relief does not have.
    """
    r = chart.resolution
    mapper = mapper or FrameToTexel.of(chart)
    white, info = paint_face_marks(copy.deepcopy(rng), np.ones((r, r, 3), np.float32), chart, mapper)
    black, _ = paint_face_marks(copy.deepcopy(rng), np.zeros((r, r, 3), np.float32), chart, mapper)
    return np.clip(1.0 - (white - black)[..., 0], 0.0, 1.0).astype(np.float32), info
