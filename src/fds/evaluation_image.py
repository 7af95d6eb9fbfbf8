"""Photo-level detail scoring: a method's detail normals in a photo's pixel grid against the GT head's.

The detail of a method is what its displacement map adds to the fitted proxy's normals, rendered in the fitted
pose into the photo (:class:`PhotoDetailRenderer`): ``delta = n_detailed − n_proxy`` per pixel, camera frame. The
GT's is ``n_GT detailed − n_GT smooth`` of the head the photo was rendered from. Both are unit-normal differences,
``[H, W, 3]``, in the same camera frame (x right, y up, z to the viewer), pixel (row 0 = top of the photo).

Scores (:func:`score_detail_normals`), inside a scored mask (the face minus eyes and brows) and per region:

- ``detail_r``: the Pearson r of the high-passed (Gaussian σ = 3 px, normalised over the mask) detail normals,
  pooled over the 3 components and the pixels (:func:`fds.metrics.pearson_r`); 1 = the relief is where the GT's is;
- ``amplitude_ratio``: RMS of the method's high-passed detail / RMS of the GT's (1 = the GT's amplitude);
- ``normal_deg``: the mean angle between the GT smooth normal carrying the method's detail,
  normalise(n_GT smooth + delta), and the GT detailed normal; ``normal_deg_zero`` is the same for no detail
  (n_GT smooth itself). Adding the detail to the GT's own smooth surface scores the detail alone: a proxy that
  is off by a few degrees would otherwise swamp the sub-degree detail.

:func:`mirrored_field` is the chance control: the GT's own detail mirrored top to bottom about the face's centre
(so its statistics are the GT's but its furrows fall on other parts of the face; a left-right mirror would match
a near-symmetric face's wrinkles with themselves, which is anatomy, not chance).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import torch
import torch.nn.functional as F

from fds.metrics import amplitude_ratio, detail_band, pearson_r

#: Face regions the photo-level benchmark reports (labels of the GT region image besides the excluded eyes/brows).
IMAGE_REGIONS = ("forehead", "eyes", "cheeks", "nasolabial", "mouth", "chin")
#: σ of the Gaussian high-pass of the detail normals, in photo pixels.
HIGHPASS_SIGMA_PX = 3.0


def _chw(a: np.ndarray | torch.Tensor) -> torch.Tensor:
    """``[H, W, C]`` or ``[H, W]`` → float32 ``[1, C, H, W]``."""
    t = torch.as_tensor(np.asarray(a, np.float32))
    return (t[None] if t.dim() == 2 else t.permute(2, 0, 1))[None]


def image_highpass(field: np.ndarray, mask: np.ndarray, sigma_px: float = HIGHPASS_SIGMA_PX) -> torch.Tensor:
    """``field [H, W, C]`` minus its Gaussian blur of ``sigma_px`` normalised over ``mask [H, W]`` (pixels off the
    mask neither count nor leak in) → ``[1, C, H, W]``, 0 off the mask."""
    return detail_band(_chw(field), sigma_px, 0.0, _chw(mask))


def mirrored_field(field: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``field [H, W, C]`` mirrored top to bottom about the centre of ``mask``'s bounding box (the chance
    control); rows mirrored from outside the image are 0."""
    rows = np.flatnonzero(np.asarray(mask, bool).any(1))
    if rows.size == 0:
        raise ValueError("mirrored_field: the mask is empty")
    h = field.shape[0]
    src = rows[0] + rows[-1] - np.arange(h)  # row i takes row (top + bottom − i)
    ok = (src >= 0) & (src < h)
    out = np.zeros_like(field)
    out[ok] = field[src[ok]]
    return out


def angle_deg(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-pixel angle (degrees) between two normal fields ``[1, 3, H, W]`` (normalised here) → ``[1, 1, H, W]``."""
    cos = (F.normalize(a, dim=1) * F.normalize(b, dim=1)).sum(1, keepdim=True).clamp(-1.0, 1.0)
    return torch.rad2deg(torch.acos(cos))


def score_detail_normals(
    pred_delta: np.ndarray,
    gt_detailed: np.ndarray,
    gt_smooth: np.ndarray,
    scored: np.ndarray,
    regions: Mapping[str, np.ndarray] | None = None,
    sigma_px: float = HIGHPASS_SIGMA_PX,
) -> dict[str, dict[str, float]]:
    """Scores of one method's detail normals on one photo (see the module doc), ``{"all" | region: {...}}``.

    Args:
        pred_delta: ``[H, W, 3]`` the method's detailed − proxy normals (camera frame); 0 = no detail.
        gt_detailed, gt_smooth: ``[H, W, 3]`` unit normals of the GT detailed and smooth surfaces (same frame).
        scored: ``bool [H, W]`` the pixels scored (the face minus eyes/brows, where both are defined).
        regions: region name → ``bool [H, W]``; each is scored inside ``scored``.
        sigma_px: high-pass σ in pixels; the high-pass is taken once over ``scored``, then cut into regions.

    Each entry holds ``detail_r``, ``amplitude_ratio``, ``normal_deg``, ``normal_deg_zero`` and ``pixels``;
    ``detail_r`` is NaN where the method adds no detail (its correlation is undefined, not 0).
    """
    scored = np.asarray(scored, bool)
    gt_delta = np.asarray(gt_detailed, np.float32) - np.asarray(gt_smooth, np.float32)
    hp_pred = image_highpass(pred_delta, scored, sigma_px)
    hp_gt = image_highpass(gt_delta, scored, sigma_px)
    smooth, detailed = _chw(gt_smooth), _chw(gt_detailed)
    err = angle_deg(smooth + _chw(pred_delta), detailed)  # [1, 1, H, W]
    err_zero = angle_deg(smooth, detailed)
    out = {}
    for name, m in {"all": scored, **{k: scored & np.asarray(v, bool) for k, v in (regions or {}).items()}}.items():
        if not m.any():
            continue
        mt = _chw(m)
        out[name] = {"detail_r": float(pearson_r(hp_pred, hp_gt, mt)),
                     "amplitude_ratio": float(amplitude_ratio(hp_pred, hp_gt, mt)),
                     "normal_deg": float(err[mt > 0].mean()), "normal_deg_zero": float(err_zero[mt > 0].mean()),
                     "pixels": int(m.sum())}
    return out


def line_relief_ratio(pred_delta: np.ndarray, lines: np.ndarray, skin: np.ndarray, ring_px: int = 8,
                      sigma_px: float = HIGHPASS_SIGMA_PX) -> float:
    """RMS of a method's high-passed detail on ``lines`` (``bool [H, W]``: pixels the GT says are flat, e.g. drawn
    eyebrow hairs, hair strands, glasses frames, cast-shadow edges) over its RMS on the ``skin`` pixels within
    ``ring_px`` of them (``skin``: scored pixels that are not lines). > 1: the method puts more relief on the dark
    lines than on the skin around them; NaN when either set is empty or the method adds no detail."""
    lines, skin = np.asarray(lines, bool), np.asarray(skin, bool) & ~np.asarray(lines, bool)
    k = 2 * int(ring_px) + 1
    near = F.max_pool2d(_chw(lines), k, stride=1, padding=int(ring_px))[0, 0].numpy() > 0
    ring = skin & near
    if not lines.any() or not ring.any():
        return math.nan
    hp = image_highpass(pred_delta, lines | skin, sigma_px)[0].permute(1, 2, 0).numpy()  # [H, W, 3]
    on_lines = float(np.sqrt(np.mean(np.sum(hp[lines] ** 2, -1))))
    on_ring = float(np.sqrt(np.mean(np.sum(hp[ring] ** 2, -1))))
    return on_lines / on_ring if on_ring > 0 else math.nan


class PhotoDetailRenderer:
    """Detail normals of displacement maps over one fitted proxy, rendered in its fitted pose into its photo.

    The proxy (``vertices_mm [V, 3]``, model frame, with the face model's triangles and UV chart) is rasterised
    once with the fit's scaled-orthographic camera (``x_px = s·(R v + t)_x``, ``y_px = H − s·(R v + t)_y``, as
    :class:`fds.proxy.ProxyResult`); each covered pixel keeps its UV. A displacement map's object-space normal map
    (:func:`fds.export.normal_maps.normal_maps`, the frame inference exports) minus the proxy's own (the map of
    zero displacement) is sampled there and turned into the camera frame: what the detailed mesh's normals differ
    from the proxy's, where the photo sees the proxy.

    Args:
        vertices_mm, triangles, uv, uv_triangles: the fitted proxy (``fds.facemodel`` conventions).
        rotation: ``[3, 3]`` model → camera; scale_px_per_mm; translation_mm ``[3]`` (camera frame).
        image_size: ``(H, W)`` of the photo, px.
        resolution: side of the displacement maps (texels).
    """

    def __init__(self, vertices_mm: np.ndarray, triangles: np.ndarray, uv: np.ndarray, uv_triangles: np.ndarray,
                 rotation: np.ndarray, scale_px_per_mm: float, translation_mm: np.ndarray,
                 image_size: tuple[int, int], resolution: int) -> None:
        from fds.export.normal_maps import normal_maps
        from fds.render import interpolate, rasterize, scaled_ortho_to_clip, uv_derivatives

        self.mesh = (np.asarray(vertices_mm, np.float32), np.asarray(triangles, np.int64), np.asarray(uv, np.float32),
                     np.asarray(uv_triangles, np.int64))
        v, tri, uvs, uv_tri = self.mesh
        h, w = (int(x) for x in image_size)
        self.rotation = torch.from_numpy(np.asarray(rotation, np.float32))
        s, t = float(scale_px_per_mm), np.asarray(translation_mm, np.float64)
        # one vertex per triangle corner: positions and UVs may be indexed differently (UV seams)
        corners = torch.from_numpy(v[tri].reshape(-1, 3))
        corner_uv = torch.from_numpy(uvs[uv_tri].reshape(-1, 2))
        corner_tri = torch.arange(len(corners)).reshape(-1, 3)
        with torch.no_grad():
            clip = scaled_ortho_to_clip(corners, self.rotation, s * t[0], s * t[1], s, w, h)
            rast = rasterize(clip, corner_tri, (h, w), backend="torch")
            self.uv_px = interpolate(corner_uv, rast, corner_tri)  # [1, H, W, 2]
        self.covered = (rast[0, ..., 3] > 0).numpy()  # [H, W]
        # mip-mapped lookups: a pixel averages the texels it covers, as the photo's GT normals are rendered
        self.uv_da = uv_derivatives(self.uv_px, rast[..., 3] > 0)  # [1, H, W, 4]
        self.resolution = int(resolution)
        self._normal_maps = normal_maps
        self.proxy_object = self._object_map(np.zeros((self.resolution,) * 2, np.float32))

    def _object_map(self, displacement_mm: np.ndarray) -> torch.Tensor:
        v, tri, uvs, uv_tri = self.mesh
        maps = self._normal_maps(displacement_mm, v, tri, uvs, uv_tri, work_resolution=min(self.resolution, 1024))
        return torch.from_numpy(maps.object)  # [R, R, 3] model frame, 0 off the chart

    def _sample(self, uv_map: torch.Tensor) -> np.ndarray:
        """A UV map ``[R, R, C]`` averaged over each pixel's footprint → ``[H, W, C]`` (0 where the proxy does not
        cover)."""
        from fds.render import texture

        out = texture(uv_map[None].float(), self.uv_px, self.uv_da)[0].numpy()
        return np.where(self.covered[..., None], out, 0.0).astype(np.float32)

    def proxy_normals(self) -> np.ndarray:
        """The proxy's own unit normals at each pixel, camera frame ``[H, W, 3]`` (0 where not covered)."""
        n = self._sample(self.proxy_object) @ self.rotation.numpy().T
        return n / np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-12)

    def detail_delta(self, displacement_mm: np.ndarray) -> np.ndarray:
        """``[H, W, 3]`` camera frame: the normals of the proxy displaced by ``displacement_mm [R, R]`` (mm, along
        its normal) minus the proxy's own, at each pixel the proxy covers (0 elsewhere)."""
        d = np.asarray(displacement_mm, np.float32)
        if d.shape != (self.resolution, self.resolution):
            raise ValueError(f"displacement_mm must be [{self.resolution}, {self.resolution}] (the renderer's map "
                             f"resolution), got {d.shape}")
        if not d.any():
            return np.zeros((*self.covered.shape, 3), np.float32)
        delta = self._object_map(d) - self.proxy_object  # [R, R, 3] model frame
        return (self._sample(delta) @ self.rotation.numpy().T).astype(np.float32)


# ------------------------------------------------------------------------------------------ the photo benchmark
#: Labels of a GT region image (``fds.data.photo_render.PHOTO_REGIONS``: 0 = not the face, else 1 + index).
PHOTO_LABELS = ("forehead", "brows", "eyes", "nose", "cheeks", "nasolabial", "mouth", "chin")


def eye_openings(landmarks_px: np.ndarray, shape: tuple[int, int], margin_px: float = 2.0) -> np.ndarray:
    """``bool [H, W]``: the two eye openings, polygons of iBUG points 37–42 and 43–48 (0-based px, y down), grown
    by ``margin_px``. Eyes hold no skin detail; the lids and crow's feet around them do."""
    from skimage.draw import polygon

    out = np.zeros(shape, bool)
    lm = np.asarray(landmarks_px, np.float64)
    for ids in (range(36, 42), range(42, 48)):
        pts = lm[list(ids)]
        if not np.isfinite(pts).all():
            continue
        rr, cc = polygon(pts[:, 1], pts[:, 0], shape)
        out[rr, cc] = True
    if margin_px > 0 and out.any():
        from scipy import ndimage

        out = ndimage.distance_transform_edt(~out) <= margin_px
    return out


def scored_regions(region: np.ndarray, landmarks_px: np.ndarray | None = None, labels: tuple[str, ...] = PHOTO_LABELS
                   ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """``(scored bool [H, W], {region: bool [H, W]})`` of a GT region image ``uint8 [H, W]``: the face minus the
    brows and the eye openings (:func:`eye_openings`, when the GT landmarks are given; else minus the whole eye
    region), and each of :data:`IMAGE_REGIONS` inside it."""
    region = np.asarray(region)
    masks = {name: region == i + 1 for i, name in enumerate(labels)}
    scored = (region > 0) & ~masks["brows"]
    if landmarks_px is not None:
        scored &= ~eye_openings(landmarks_px, region.shape)
    else:
        scored &= ~masks["eyes"]
    return scored, {name: masks[name] & scored for name in IMAGE_REGIONS if name in masks}
