"""Photo-level half of ``eval/run.py``: every detail method on held-out heads rendered as photos, scored in the
photo's pixel grid against the head's GT detail (:mod:`fds.evaluation_image` has the math).

Held-out set: heads of seeds no training set uses (``photo_level.start_seed``), each rendered by
:class:`fds.data.photo_scans.PhotoScanGenerator` under the three :data:`LIGHTINGS` (the same head, pose, camera
and background; only the distant light changes), then put through the real proxy stage as inference does. Sample
folders ``photo_<seed>_<lighting>`` (the photo-level sample format) are written once and reused; photos whose
detection or fit fails are skipped and counted.

Per photo and method: the method's displacement of the photo's unwrap (faded towards unseen texels as inference
does) rendered as detail normals in the fitted pose (:class:`~fds.evaluation_image.PhotoDetailRenderer`), scored
inside the face minus brows and eye openings, overall and per region (:func:`~fds.evaluation_image.
score_detail_normals`): ``detail_r``, ``amplitude_ratio``, ``normal_deg`` against ``normal_deg_zero``. Two controls
are scored beside the methods: the mirrored GT (``mirrored_gt``), the chance level, and the photo's own training
target (``fitted_gt``: the GT displacement in the fitted UV, rendered as a method's map is), the ceiling of any
predictor of that target: what the fitted proxy, the ray-cast and the rendering lose. ``line_relief`` is each
method's relief on the lines the GT says are flat (painted eyebrow hairs, hair strands, stubble, moles; edges of
cast shadows of the strongest light) over its relief on the skin around them
(:func:`~fds.evaluation_image.line_relief_ratio`), divided by the same ratio of the GT's own detail (the skin under a
drawn line keeps its pores and wrinkles): 1 = the lines carry as much relief, relative to the skin around, as the
truth; > 1 = the method grooves the lines.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from fds.evaluation_image import (
    PHOTO_LABELS,
    PhotoDetailRenderer,
    line_relief_ratio,
    mirrored_field,
    score_detail_normals,
    scored_regions,
)

if TYPE_CHECKING:
    from fds.evaluation_photos import MapPredictor
    from fds.proxy.stage import ProxyResult

log = logging.getLogger(__name__)


#: Distant lights of the three held-out photos of each head (camera frame: x right, y up, z to the viewer;
#: ``direction`` points from the face to the light), added to the seed's own SH environment: soft frontal, 45°
#: from the upper left, and a hard light from the side (80° off the view axis) that casts sharp shadows.
LIGHTINGS: dict[str, list[dict]] = {
    "soft_front": [{"direction": [0.0, 0.259, 0.966], "rgb": [1.6, 1.6, 1.6], "radius_deg": 12.0}],
    "upper_left_45": [{"direction": [-0.5, 0.5, 0.707], "rgb": [1.8, 1.8, 1.8], "radius_deg": 4.0}],
    "hard_side": [{"direction": [0.975, 0.087, 0.174], "rgb": [2.2, 2.2, 2.2], "radius_deg": 0.0}],
}
#: A colour-only mark counts as a dark line where it changed the albedo by more than this (sRGB, 0–1: ~25 levels).
MARK_MIN_CHANGE = 0.1
METRICS = ("detail_r", "amplitude_ratio", "normal_deg", "normal_deg_zero")


@dataclass
class PhotoCase:
    """One held-out photo: its folder, the GT in its pixel grid and the proxy stage's result on it."""

    name: str
    seed: int | None
    lighting: str
    gt: dict[str, np.ndarray]  # photo_gt.npz: normal_detail, normal_smooth, region, face_mask, landmarks_px, …
    proxy: ProxyResult
    fitted_gt: np.ndarray | None = None  # float32 [R, R] mm: the sample's GT in the fitted UV (0 off its mask)
    face_width_px: float | None = None  # the rendered face's width in the photo, pixels (sample.json photo block)


def write_held_out_photos(root: str | Path, generator, seeds: Sequence[int],
                          lightings: Mapping[str, list[dict]] = LIGHTINGS) -> tuple[list[Path], list[str]]:
    """``photo_<seed>_<lighting>`` sample folders under ``root`` → (folders, skipped reasons). Existing folders are
    kept and photos skipped before (``<root>/skipped.json``) are not rendered again, unless they were rendered
    with other settings than ``generator``'s: another texture filter (``PhotoConfig.texture_filter``; renders
    before it existed point-sampled) or camera (``PhotoConfig.camera_effects``). Those are rendered again, so one
    benchmark never mixes two kinds of photo. ``generator`` is a :class:`fds.data.photo_scans.PhotoScanGenerator`."""
    import json

    from fds.data.photo_scans import SkippedPhoto, write_photo_sample
    from fds.fileio import atomic_write_bytes

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    setting = _render_setting(generator.photo_config.texture_filter, generator.photo_config.camera_effects)
    known_path = root / "skipped.json"
    known = json.loads(known_path.read_text()) if known_path.is_file() else {}
    if known.get(_SETTING_KEY, "point") != setting:
        known = {}  # skipped under other settings: the photo differs, try again
    known[_SETTING_KEY] = setting
    folders, skipped = [], []
    for seed in seeds:
        for name, lights in lightings.items():
            folder = root / f"photo_{int(seed):06d}_{name}"
            if folder.name in known:
                skipped.append(f"{folder.name}: {known[folder.name]}")
                continue
            rendered_with = _rendered_with(folder)
            if rendered_with not in (None, setting):
                log.warning("photo-level held-out set: %s was rendered with settings %r (texture filter, camera); "
                            "rendering it again with %r", folder, rendered_with, setting)
            if rendered_with != setting:
                try:
                    sample = generator.generate(int(seed), lights=lights)
                except SkippedPhoto as exc:
                    skipped.append(f"{folder.name}: {exc}")
                    known[folder.name] = str(exc)
                    atomic_write_bytes(known_path, [json.dumps(known, indent=1, sort_keys=True).encode()])
                    log.warning("photo-level held-out set: skipped %s", exc)
                    continue
                sample.meta["lighting"] = name
                sample.scan.meta["lighting"] = name
                write_photo_sample(folder, sample)
            folders.append(folder)
    return folders, skipped


_SETTING_KEY = "_texture_filter"  # skipped.json: the render settings its skips were found with (the key's name
# dates from when the texture filter was the only one)


def _render_setting(texture_filter: str, camera_effects: bool) -> str:
    """The render settings a held-out photo depends on, as one string: the texture filter, and a suffix when the
    camera's effects were not applied (so folders rendered before that option read as they did)."""
    return texture_filter if camera_effects else f"{texture_filter}, perfect camera"


def _rendered_with(folder: Path) -> str | None:
    """The :func:`_render_setting` a held-out photo folder was rendered with (texture filter ``"point"`` before
    that option existed), or None when it holds no complete sample."""
    import json

    meta = folder / "sample.json"
    if not meta.is_file():
        return None
    photo = json.loads(meta.read_text()).get("photo", {})
    applied = (photo.get("camera_effects") or {}).get("applied", True)
    return _render_setting(str(photo.get("texture_filter", "point")), applied is not False)


def load_case(folder: str | Path) -> PhotoCase:
    """A photo-level sample folder → :class:`PhotoCase` (a clear error naming the folder when a file is missing)."""
    from fds.data.sample_io import SampleFormatError, read_meta
    from fds.proxy.stage import ProxyResult

    folder = Path(folder)
    path, maps = folder / "photo_gt.npz", folder / "maps.npz"
    if not path.is_file() or not maps.is_file() or not (folder / "proxy").is_dir():
        raise FileNotFoundError(f"{folder} is not a photo-level sample (needs photo_gt.npz, maps.npz and proxy/): "
                                "generate it with fds.data.photo_scans (datasets/generate_photo_scans.py)")
    with np.load(path) as z:
        gt = {k: z[k] for k in z.files}
    meta = read_meta(folder)
    with np.load(maps) as z:  # only the two arrays the ceiling control needs (an npz decompresses per array)
        target = (z["displacement_mm"] * (z["mask"] > 0)).astype(np.float32)
    r = meta["resolution"]
    if target.shape != (r, r):
        raise SampleFormatError(f"{maps}: displacement_mm is {target.shape}, sample.json says {r}x{r}")
    face_px = (meta.get("photo") or {}).get("face_width_px")
    return PhotoCase(folder.name, meta.get("seed"), str(meta.get("lighting", "random")), gt,
                     ProxyResult.load(folder / "proxy"), target, None if face_px is None else float(face_px))


def line_scope(gt: Mapping[str, np.ndarray]) -> np.ndarray:
    """``bool [H, W]``: where the flat-lines check looks: the face minus the eye openings and the mouth (the
    painted lip line runs along the lips' real crease). Unlike the scored mask it keeps the brows: eyebrow hairs
    are the lines it is about."""
    from fds.evaluation_image import eye_openings

    region = np.asarray(gt["region"])
    scope = (region > 0) & (region != PHOTO_LABELS.index("mouth") + 1)
    if "landmarks_px" in gt:
        scope &= ~eye_openings(gt["landmarks_px"], region.shape)
    else:
        scope &= region != PHOTO_LABELS.index("eyes") + 1
    return scope


def flat_lines(gt: Mapping[str, np.ndarray], scope: np.ndarray) -> np.ndarray:
    """``bool [H, W]``: pixels of ``scope`` the GT says are flat dark lines: colour-only marks (``marks`` >
    :data:`MARK_MIN_CHANGE`: eyebrow hairs, hair strands, stubble, moles) and cast-shadow edges of the strongest
    light (``shadow``, :func:`fds.data.photo_render.cast_shadow_edges`)."""
    from fds.data.photo_render import cast_shadow_edges

    lines = np.zeros(scope.shape, bool)
    if "marks" in gt:
        lines |= np.asarray(gt["marks"], np.float32) > MARK_MIN_CHANGE
    if "shadow" in gt:
        lines |= cast_shadow_edges(gt["shadow"])
    return lines & scope


def score_case(case: PhotoCase, methods: Mapping[str, MapPredictor], face_model, resolution: int,
               edge_blur_texels: float = 4.0) -> dict:
    """Scores of every method and the two controls (mirrored GT, fitted-UV GT) on one photo: ``{"photo", "seed",
    "lighting", "scores": {method: {region: {metric: value}}}, "line_relief": {method: ratio}, "line_pixels",
    "face_width_px"}`` (the σ = 3 px high-pass keeps coarser relief on a small face than on a large one)."""
    from fds.evaluation_photos import faded_detail

    p, gt = case.proxy, case.gt
    fm = face_model
    fit = p.fit
    renderer = PhotoDetailRenderer(fit.vertices_mm, fm.triangles, fm.uv, fm.uv_triangles, fit.rotation,
                                   fit.scale_px_per_mm, fit.translation_mm, fit.image_size, resolution)
    detailed = np.asarray(gt["normal_detail"], np.float32)
    smooth = np.asarray(gt["normal_smooth"], np.float32)
    scored, regions = scored_regions(gt["region"], gt.get("landmarks_px"))
    scored &= renderer.covered & np.asarray(gt["face_mask"], bool) & (np.abs(smooth).sum(-1) > 0)
    scope = line_scope(gt) & renderer.covered & (np.abs(smooth).sum(-1) > 0)
    lines = flat_lines(gt, scope)
    if case.fitted_gt is not None:  # the control is a map like any method's, faded at unseen texels as they are
        target = case.fitted_gt
        methods = {**methods, "fitted_gt": lambda texture, fit: target}
    deltas = {name: renderer.detail_delta(faded_detail(fn, p.uv.texture, p.uv.confidence, edge_blur_texels, fit))
              for name, fn in methods.items()}
    deltas["mirrored_gt"] = mirrored_field(detailed - smooth, scored)
    scores = {name: score_detail_normals(d, detailed, smooth, scored, regions) for name, d in deltas.items()}
    # the skin under a drawn line keeps its own relief: each method's line/skin ratio over the GT's own
    gt_relief = line_relief_ratio(detailed - smooth, lines, scope)
    relief = {name: line_relief_ratio(d, lines, scope) / gt_relief for name, d in deltas.items()
              if name != "mirrored_gt"}
    return {"photo": case.name, "seed": case.seed, "lighting": case.lighting, "scores": scores,
            "line_relief": relief, "line_relief_gt": gt_relief, "line_pixels": int(lines.sum()),
            "scored_pixels": int(scored.sum()), "face_width_px": case.face_width_px}


def _mean(values: list[float]) -> float:
    v = [x for x in values if x is not None and math.isfinite(x)]
    return float(np.mean(v)) if v else math.nan


def summarise_photo_level(rows: list[dict]) -> dict:
    """Means over the photos: ``overall`` ``{method: {metric}}`` (``all`` region), ``by_lighting``
    ``{lighting: {method: {metric}}}``, ``by_region`` ``{region: {method: {metric}}}``, ``line_relief``
    ``{method: mean ratio}``, ``below_zero_every_photo`` ``{method: bool}`` (normal error under no detail's) and
    ``heads``: bootstrap intervals over the heads the photos come from (:func:`head_intervals`)."""
    out: dict = {"photos": len(rows), "overall": {}, "by_lighting": defaultdict(dict), "by_region": defaultdict(dict),
                 "line_relief": {}, "below_zero_every_photo": {}}
    if not rows:
        return out
    methods = list(rows[0]["scores"])
    for m in methods:
        per = [r["scores"][m].get("all", {}) for r in rows]
        out["overall"][m] = {k: _mean([s.get(k) for s in per]) for k in METRICS}
        out["below_zero_every_photo"][m] = all(s.get("normal_deg", math.inf) < s.get("normal_deg_zero", -math.inf)
                                               for s in per)
        for lighting in sorted({r["lighting"] for r in rows}):
            sel = [r["scores"][m].get("all", {}) for r in rows if r["lighting"] == lighting]
            out["by_lighting"][lighting][m] = {k: _mean([s.get(k) for s in sel]) for k in METRICS}
        regions = sorted({reg for r in rows for reg in r["scores"][m]} - {"all"})
        for reg in regions:
            sel = [r["scores"][m][reg] for r in rows if reg in r["scores"][m]]
            out["by_region"][reg][m] = {k: _mean([s.get(k) for s in sel]) for k in METRICS}
        if m in rows[0]["line_relief"]:
            out["line_relief"][m] = _mean([r["line_relief"].get(m) for r in rows])
    out["by_lighting"], out["by_region"] = dict(out["by_lighting"]), dict(out["by_region"])
    out["heads"] = head_intervals(rows)
    return out


def head_intervals(rows: list[dict], level: float = 0.95, resamples: int = 2000, seed: int = 0,
                   baseline: str | None = None) -> dict:
    """How far the means over photos can be trusted, given how few heads they come from.

    Photos of one head (its lightings) share its wrinkles, skin and size, so they are not independent: the
    percentile bootstrap resamples *heads* with replacement (each resample's statistic is the mean over the
    photos of the drawn heads, as ``overall``) → ``{"heads": n, "level": level, "interval": {method: {metric:
    [lo, hi]}}, "paired": {method: {metric: [mean, lo, hi]}}}``. ``paired`` is each method minus ``baseline``
    (default the first method) on the same photos, the same resamples: the interval of a difference, which is
    narrower than the two intervals suggest when both methods move with the head. With a handful of heads the
    bootstrap has few distinct resamples and understates the spread; it is a floor on the uncertainty.
    """
    out: dict = {"heads": 0, "level": level, "interval": {}, "paired": {}}
    if not rows:
        return out
    heads = sorted({int(r["seed"]) for r in rows})
    out["heads"] = len(heads)
    methods = list(rows[0]["scores"])
    baseline = methods[0] if baseline is None else baseline
    metrics = ("detail_r", "amplitude_ratio", "normal_deg")

    def table(method: str, metric: str) -> np.ndarray:  # [heads, photos of the most-photographed head], NaN-padded
        per = [[r["scores"][method].get("all", {}).get(metric) for r in rows if int(r["seed"]) == h] for h in heads]
        width = max(len(p) for p in per)
        return np.array([[math.nan if v is None else float(v) for v in p] + [math.nan] * (width - len(p))
                         for p in per], np.float64)

    draws = np.random.default_rng(seed).integers(0, len(heads), size=(resamples, len(heads)))
    lo_q, hi_q = 50 * (1 - level), 50 * (1 + level)

    def boot(values: np.ndarray) -> list[float]:
        sums = np.nansum(values, axis=1)[draws].sum(1)
        counts = np.isfinite(values).sum(1)[draws].sum(1)
        means = sums[counts > 0] / counts[counts > 0]
        return [float(np.percentile(means, lo_q)), float(np.percentile(means, hi_q))] if len(means) else \
            [math.nan, math.nan]

    for m in methods:
        out["interval"][m], out["paired"][m] = {}, {}
        for k in metrics:
            values = table(m, k)
            if not np.isfinite(values).any():
                continue
            out["interval"][m][k] = boot(values)
            if m != baseline:
                diff = values - table(baseline, k)
                if np.isfinite(diff).any():
                    out["paired"][m][k] = [float(np.nanmean(diff)), *boot(diff)]
    out["baseline"] = baseline
    return out


def evaluate_photo_level(c, methods: Mapping[str, MapPredictor], resolution: int, face_model_name: str,
                         generator, assets_dir=None) -> dict:
    """The photo-level half of ``evaluate``: ``c`` = the eval config's ``photo_level`` (``data_dir``, ``start_seed``,
    ``num_heads``, ``edge_blur_texels``); ``generator`` a :class:`fds.data.photo_scans.PhotoScanGenerator` in the
    checkpoint's chart. Writes the held-out photos when missing and scores every method on each. Returns
    ``{"rows": [...], "summary": {...}, "skipped": [...], "lightings": LIGHTINGS}``."""
    from fds.facemodel import load_face_model

    if generator.face_model_name != face_model_name or int(generator.resolution) != int(resolution):
        raise ValueError(f"the photo-level generator renders {generator.face_model_name} at {generator.resolution}² "
                         f"but the checkpoint works in the {face_model_name} chart at {resolution}²: set "
                         "data.photo.face_model / data.photo.resolution to match")
    seeds = range(int(c.start_seed), int(c.start_seed) + int(c.num_heads))
    folders, skipped = write_held_out_photos(c.data_dir, generator, seeds)
    fm = load_face_model(face_model_name, assets_dir)
    rows = []
    for folder in folders:
        try:
            rows.append(score_case(load_case(folder), methods, fm, resolution, float(c.edge_blur_texels)))
        except Exception as exc:  # one bad photo is a reported skip, not the end of the run
            skipped.append(f"{folder.name}: {type(exc).__name__}: {exc}")
            log.error("photo-level benchmark: %s failed: %s", folder.name, exc)
            continue
        log.info("photo-level benchmark: %s scored", folder.name)
    return {"rows": rows, "summary": summarise_photo_level(rows), "skipped": skipped,
            "lightings": {k: v for k, v in LIGHTINGS.items()}}
