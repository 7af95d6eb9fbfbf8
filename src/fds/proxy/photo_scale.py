"""The photo scale: how many photo pixels each UV texel was sampled from, as a per-texel map.

The unwrap resamples the photo into a fixed UV chart, so a 150 px face and a 1000 px face give textures of the
same size: the small face's texture is the photo upsampled about 4×, blurred at the scale of wrinkles, while the
large face's shows them. A patch alone hardly tells the two apart. This module gives the network that scale as
one more input channel (``channels="v_cue_scale"``, :func:`fds.data.patches.preprocess`)::

    scale = log2( photo px per texel ) = ½ · log2 |det J|,   J = ∂(x, y)_photo / ∂(col, row)_UV

The Jacobian comes from the fitted proxy: its vertices projected into the photo (:meth:`FitResult.project`,
pixels, y down), interpolated over the chart and differenced between neighbouring texels. It carries the face's
size in the photo and the foreshortening of each part of it (the far cheek of a turned head reads smaller).
At 1024² SFM texels the median over the face is close to ``log2(width) − 9.7``, ``width`` the fitted proxy's
projected width in px: about −2.9 for the smallest photo-level training face (152 px nominal, 128 px projected),
+0.1 for the largest (``benchmarks/photo_scale_range.py``). :func:`photo_scale_warnings` tells the user when a
face lies outside the scales its network was trained on: the range a training export stores in the checkpoint
(:attr:`fds.models.checkpoint.CheckpointMeta.photo_scale_range`, from :mod:`fds.data.scale_range`), or
:data:`TRAINED_RANGE` for a checkpoint that stores none (the ninth round, the default until 2026-12-07).

Frames: UV texels (row 0 = top of the chart), photo pixels. Texels outside the chart, or whose neighbours are,
get the median of the rest (the network never reads them: the unwrap shows nothing there). Mirroring the texture
left-right mirrors the map and changes nothing else (:func:`mirror_scale`).
"""

from __future__ import annotations

import numpy as np
import torch

from fds.facemodel import FaceModel
from fds.facemodel.uvchart import uv_chart

#: The map is clipped to [LOW, HIGH] (log2 px per texel): 1/64 px (a face a few pixels wide) to 8 px per texel.
LOW, HIGH = -6.0, 3.0
#: Median photo scale (log2 px per texel at 1024² texels, over the face's chart) of the smallest and the largest
#: face in the photo-level training data of the ninth round (the default until 2026-12-07; 645 heads, seeds
#: 3000–3729, nominal face widths 150–1000 px, the generator's default; ``benchmarks/photo_scale_range.py``). A
#: network that reads the scale saw nothing outside it. Checkpoints that read the scale and store no range of their
#: own are read with this one.
TRAINED_RANGE = (-2.879, 0.144)


def photo_scale(fm: FaceModel, vertices_px: np.ndarray, resolution: int) -> torch.Tensor:
    """``float32 [1, R, R]`` log2 photo pixels per texel (module doc) of a proxy whose vertices project to
    ``vertices_px`` (``[V, 2]`` photo pixels, x = column, y = row down) in ``fm``'s chart at ``resolution``."""
    px = np.asarray(vertices_px, np.float64)
    if px.shape != (fm.num_vertices, 2) or not np.isfinite(px).all():
        raise ValueError(f"vertices_px must be finite [V={fm.num_vertices}, 2] photo pixels, got {px.shape}")
    chart = uv_chart(fm, resolution)
    centre = px.mean(0)  # the chart interpolates in float32: positions about the face's centre keep their precision
    t = chart.interpolate(px - centre).astype(np.float64)  # [R, R, 2] photo position of each texel centre, shifted
    cov = chart.covered
    ok = np.zeros_like(cov)
    ok[1:-1, 1:-1] = cov[1:-1, 1:-1] & cov[1:-1, 2:] & cov[1:-1, :-2] & cov[2:, 1:-1] & cov[:-2, 1:-1]
    d_col = np.zeros_like(t)
    d_row = np.zeros_like(t)
    d_col[:, 1:-1] = 0.5 * (t[:, 2:] - t[:, :-2])  # px per texel along +column
    d_row[1:-1] = 0.5 * (t[2:] - t[:-2])  # px per texel along +row
    det = np.abs(d_col[..., 0] * d_row[..., 1] - d_col[..., 1] * d_row[..., 0])  # photo px² per texel
    s = 0.5 * np.log2(np.maximum(det, 2.0 ** (2 * LOW)))
    fill = float(np.median(s[ok])) if ok.any() else 0.0
    s = np.clip(np.where(ok, s, fill), LOW, HIGH)
    return torch.from_numpy(s.astype(np.float32))[None]


def photo_scale_of_fit(fm: FaceModel, fit, resolution: int) -> torch.Tensor:
    """:func:`photo_scale` of a :class:`fds.proxy.fit.FitResult` (its fitted vertices through its camera)."""
    return photo_scale(fm, fit.project(fit.vertices_mm), resolution)


def face_photo_scale(scale: torch.Tensor, fm: FaceModel) -> float:
    """Median of a ``[1, R, R]`` :func:`photo_scale` map over ``fm``'s chart (log2 px per texel at ``R``)."""
    covered = torch.from_numpy(uv_chart(fm, int(scale.shape[-1])).covered)
    return float(scale[0][covered].median())


def photo_scale_warnings(median_scale: float, resolution: int, width_px: float | None = None,
                         trained_range: tuple[float, float] = TRAINED_RANGE, range_resolution: int = 1024
                         ) -> list[str]:
    """A warning (empty list: none) when a face's median photo scale (:func:`face_photo_scale`, at ``resolution``
    texels) lies outside ``trained_range`` (log2 px per texel at ``range_resolution`` texels; default
    :data:`TRAINED_RANGE`, the shipped checkpoint's): the detail network never saw a face that small or that
    large, so its detail there is extrapolated. ``width_px``: the face's width in the photo, quoted in the message."""
    shift = np.log2(range_resolution / resolution)  # coarser texels hold more pixels each
    low, high = (float(x) + shift for x in trained_range)
    width = "" if width_px is None else f", the face {width_px:.0f} px wide"
    trained = f"its training faces spanned {low:.2f} to {high:.2f}"
    if median_scale < low:
        return [f"the face is smaller in the photo than any the detail network was trained on (photo scale "
                f"{median_scale:.2f} log2 px per texel{width}; {trained}): its detail is extrapolated and usually "
                "faint"]
    if median_scale > high:
        return [f"the face is larger in the photo than any the detail network was trained on (photo scale "
                f"{median_scale:.2f} log2 px per texel{width}; {trained}): its detail is extrapolated"]
    return []


def mirror_scale(scale: torch.Tensor) -> torch.Tensor:
    """The map of the left-right mirrored texture (``[..., H, W]``): a size is the same seen in a mirror."""
    return torch.flip(scale, dims=[-1])
