"""Real-photo half of ``eval/run.py``: the proxy stage and every detail method on photos without GT geometry.

- **Labelled photos** (iBUG-68 ``.pts`` beside each image): landmark NME of the proxy's detector
  (:func:`fds.proxy.landmarks.nme`: mean point error over the outer-eye-corner distance, the 300-W convention of
  ``docs/bench_proxy.md``), every face detected and the one nearest the labelled face scored.
- **Wild photos**, through :class:`fds.proxy.ProxyStage` (cached), the largest face of each:
  completion (the proxy succeeded); the fit's landmark reprojection error (the fitted model's landmark vertices
  projected into the photo vs the detected landmarks, mean over the fixed mapped points, in px and over the
  outer-eye-corner distance); and, per detail method, the photometric error of the re-render: the proxy's UV
  maps and SH/albedo estimate (:func:`fds.data.wild.appearance_maps`) shaded with the normals of the detailed
  surface and compared with the unwrapped photo under the visibility weights: the training appearance loss
  (``masked_l1`` of :func:`fds.models.losses.reconstruct_texture`, L1 in [0, 1] RGB units) on full UV maps at
  the checkpoint's resolution. Zero detail re-renders the proxy alone. Detail fades out towards unseen texels
  as in inference.

Wild photos the training run's appearance stream drew are left out (``exclude_training_photos``), so the
photometric error is measured on photos the network never saw.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from fds.detail import DetailPredictor, check_face_model
from fds.progress import progress
from fds.proxy.landmarks import OUTER_EYE_CORNERS, FaceDetector, load_image, nme, read_pts

log = logging.getLogger(__name__)

#: A method scored on maps: (UV texture uint8 [R,R,3], the FitResult it was unwrapped through or None when there is
#: no photo) → displacement mm [R,R]. Only checkpoints that read the photo scale use the fit.
MapPredictor = Callable[[np.ndarray, Any], np.ndarray]


def spread(items: Sequence, max_items: int | None) -> list:
    """An evenly spread subset of at most ``max_items`` (all when None), first and last kept, order kept."""
    items = list(items)
    if max_items is None or len(items) <= max_items:
        return items
    if max_items <= 0:
        return []
    return [items[i] for i in np.linspace(0, len(items) - 1, int(max_items)).round().astype(int)]


def labelled_photos(folder: str | Path, max_photos: int | None = None) -> list[Path]:
    """Images under ``folder`` with a same-stem ``.pts`` file (sorted; an evenly spread ``max_photos``)."""
    from fds.data.skin import find_photos

    found = find_photos([folder], with_landmarks=True)
    if not found:
        raise FileNotFoundError(f"no photo with a .pts file under {folder} (photos.labelled_dir)")
    return spread(found, max_photos)


def held_out_wild_photos(dirs: Sequence[str | Path], max_photos: int | None,
                         training: dict | None = None) -> tuple[list[Path], list[Path]]:
    """``(photos, excluded)``: images under ``dirs`` minus those a training run's appearance stream drew
    (``training`` = its ``data.wild`` settings ``photo_dirs``, ``include_library_photos``, ``max_photos``, as
    :func:`fds.data.wild.find_wild_photos` draws them), then an evenly spread ``max_photos`` of the rest."""
    from fds.data.wild import find_wild_photos

    candidates = [p.resolve() for p in find_wild_photos(list(dirs), include_library=False)]
    if not candidates:
        raise FileNotFoundError(f"no photo under {list(dirs)} (photos.wild_dirs)")
    seen: set[Path] = set()
    if training:
        seen = {p.resolve() for p in find_wild_photos(list(training.get("photo_dirs") or []),
                                                       bool(training.get("include_library_photos", True)),
                                                       training.get("max_photos"))}
    excluded = [p for p in candidates if p in seen]
    rest = [p for p in candidates if p not in seen]
    if not rest:
        raise ValueError(f"no held-out wild photo left under {list(dirs)}: the training run drew all "
                         f"{len(excluded)} of them; point photos.wild_dirs at other photos (e.g. the labelled "
                         "folder) or set photos.exclude_training_photos=null")
    return spread(rest, max_photos), excluded


def nearest_face(faces: list, gt_px: np.ndarray):
    """The detected face whose landmark centroid is nearest the labelled one (photos with several faces)."""
    centre = np.asarray(gt_px, np.float64).mean(0)
    return min(faces, key=lambda f: float(np.linalg.norm(f.landmarks_px.mean(0) - centre)))


def landmark_nme(photos: Sequence[Path], detector: FaceDetector) -> list[dict]:
    """Per labelled photo: ``{"photo", "nme"}`` (``nme`` None and a ``reason`` when no face is found)."""
    rows = []
    for p in progress(photos, "labelled photos", unit="photo"):
        gt = read_pts(p.with_suffix(".pts"))
        try:
            face = nearest_face(detector(load_image(p), all_faces=True), gt)
            rows.append({"photo": p.name, "nme": nme(face.landmarks_px, gt)})
        except Exception as exc:  # one photo's failure is a data point, not the end of the run
            rows.append({"photo": p.name, "nme": None, "reason": f"{type(exc).__name__}: {exc}"})
    return rows


def reprojection_error(result) -> dict[str, float]:
    """The fit's landmark reprojection error of a ``ProxyResult``: px (the fit's own mean over the fixed mapped
    landmarks) and normalised by the detected outer-eye-corner distance (dimensionless, like NME)."""
    lm = np.asarray(result.landmarks_px, np.float64)
    eyes = float(np.linalg.norm(lm[OUTER_EYE_CORNERS[0]] - lm[OUTER_EYE_CORNERS[1]]))
    px = float(result.fit.reprojection_error_px)
    return {"reprojection_px": px, "reprojection_nme": px / max(eyes, 1e-9)}


def _chw(a: np.ndarray) -> torch.Tensor:
    """``[H, W, C]`` (or ``[H, W]``) array → float32 ``[1, C, H, W]``."""
    t = torch.from_numpy(np.array(a, np.float32))
    return (t[None] if t.dim() == 2 else t.permute(2, 0, 1))[None]


def rerender(displacement_mm: np.ndarray, maps: dict[str, np.ndarray]) -> torch.Tensor:
    """The proxy re-rendered in UV with a displacement (mm) moving its surface: albedo · SH shading of the
    detailed normals (``fds.models.losses.reconstruct_texture``, the appearance loss's render) → ``[1, 3, R, R]``."""
    from fds.models.losses import reconstruct_texture

    return reconstruct_texture(_chw(displacement_mm), _chw(maps["position_mm"]), _chw(maps["normal"]),
                               _chw(maps["albedo"]), torch.from_numpy(np.array(maps["sh"], np.float32))[None])


def photometric_l1(displacement_mm: np.ndarray, maps: dict[str, np.ndarray]) -> float:
    """L1 (RGB in [0, 1]) between the unwrapped photo and the proxy re-rendered with the detailed normals, under
    the visibility weights: the training appearance loss (``masked_l1`` of ``rerender``) on full UV maps
    (``maps`` from ``fds.data.wild.appearance_maps``)."""
    from fds.models.losses import masked_l1

    return float(masked_l1(rerender(displacement_mm, maps), _chw(maps["texture"]) / 255, _chw(maps["visibility"])))


def faded_detail(predict: MapPredictor, texture: np.ndarray, confidence: np.ndarray, edge_blur_texels: float,
                 fit: Any = None) -> np.ndarray:
    """A method's displacement (mm) of a photo's UV texture, faded out towards the texels the photo does not
    see with inference's fade (:func:`fds.detail.seen_weight`), the same for every method."""
    from fds.detail import seen_weight
    from fds.synthesis import upsample_mask

    disp = predict(texture, fit)
    visible = upsample_mask(np.asarray(confidence) > 0, disp.shape[0])
    return (disp * seen_weight(visible, edge_blur_texels)).astype(np.float32)


def wild_photo_scores(photos: Sequence[Path], stage, methods: dict[str, MapPredictor], resolution: int,
                      edge_blur_texels: float = 4.0, on_maps: Callable | None = None) -> list[dict]:
    """Per wild photo: ``{"photo", "ok", "reason"?, "reprojection_px", "reprojection_nme",
    "photometric_l1": {method: value}}``; ``resolution`` is the detail maps' side (the checkpoint's).
    ``on_maps(photo, maps, displacements)`` sees each photo's maps (used for figures)."""
    from fds.data.wild import appearance_maps

    rows = []
    for p in progress(photos, "wild photos", unit="photo"):
        try:
            result = stage(p)[0]
            if stage.cache_dir is not None:  # read back: a first run scores the cached (8-bit) confidence too
                result = stage(p)[0]
        except Exception as exc:  # the proxy failed: counts against completion
            rows.append({"photo": p.name, "ok": False, "reason": f"{type(exc).__name__}: {exc}"})
            log.warning("photo eval: no proxy for %s (%s)", p, exc)
            continue
        maps = appearance_maps(stage.face_model, result, resolution)
        disps = {name: faded_detail(fn, maps["texture"], result.uv.confidence, edge_blur_texels, result.fit)
                 for name, fn in methods.items()}
        rows.append({"photo": p.name, "ok": True, **reprojection_error(result),
                     "photometric_l1": {name: photometric_l1(d, maps) for name, d in disps.items()}})
        if on_maps is not None:
            on_maps(p, maps, disps)
    return rows


def summarise_photos(labelled: list[dict], wild: list[dict]) -> dict:
    """Aggregates: NME (mean, median, max over found faces), completion rate, reprojection and per-method
    photometric error (means over the photos with a proxy)."""
    found = np.array([r["nme"] for r in labelled if r["nme"] is not None])
    ok = [r for r in wild if r["ok"]]
    out: dict = {"labelled": {"photos": len(labelled), "found": int(found.size)},
                 "wild": {"photos": len(wild), "completed": len(ok), "completion_rate": len(ok) / max(len(wild), 1)}}
    if found.size:
        out["labelled"].update(nme_mean=float(found.mean()), nme_median=float(np.median(found)),
                               nme_max=float(found.max()))
    if ok:
        for key in ("reprojection_px", "reprojection_nme"):
            out["wild"][f"{key}_mean"] = float(np.mean([r[key] for r in ok]))
        out["wild"]["photometric_l1"] = {m: float(np.mean([r["photometric_l1"][m] for r in ok]))
                                         for m in ok[0]["photometric_l1"]}
    return out


def evaluate_photos(cfg, methods: dict[str, MapPredictor], predictor: DetailPredictor, device: str
                    ) -> tuple[dict, dict | None]:
    """The real-photo half of ``evaluate`` (``cfg.photos``, ``cfg.proxy``, ``cfg.cache_dir`` of the eval config);
    the maps are at ``predictor``'s resolution, the proxies must use its face model.

    Returns ``({"labelled": [...], "wild": [...], "excluded_training_photos": n, "summary": {...}}, sample)``
    where ``sample`` holds the first completed wild photo's UV texture, visibility and each method's re-render
    (float [R, R, 3] in [0, 1]) for the report's figure (None when no photo completed)."""
    from omegaconf import OmegaConf

    from fds.proxy.stage import ProxyStage

    p = cfg.photos
    proxy = cast(dict, OmegaConf.to_container(cfg.proxy, resolve=True))
    stage = ProxyStage(proxy, cache_dir=cfg.cache_dir, device=device, assets_dir=cfg.paths.assets_dir)
    check_face_model(predictor.meta, stage.config.face_model, predictor.source)
    labelled = landmark_nme(labelled_photos(p.labelled_dir, p.labelled_max_photos), stage.detector)
    training = (cast(dict, OmegaConf.to_container(p.exclude_training_photos, resolve=True))
                if p.exclude_training_photos else None)
    wild, excluded = held_out_wild_photos(list(p.wild_dirs), p.wild_max_photos, training)
    log.info("photo eval: %d labelled photos, %d wild photos (%d training photos left out)", len(labelled),
             len(wild), len(excluded))
    sample: dict = {}

    def keep_first(photo: Path, maps: dict, disps: dict) -> None:
        if not sample:
            sample.update(photo=photo.name, texture=maps["texture"], visibility=np.asarray(maps["visibility"]),
                          renders={m: rerender(d, maps)[0].permute(1, 2, 0).clamp(0, 1).numpy()
                                   for m, d in disps.items()})

    rows = wild_photo_scores(wild, stage, methods, predictor.map_resolution, float(p.edge_blur_texels),
                             on_maps=keep_first)
    return ({"labelled": labelled, "wild": rows, "training_draw": training, "excluded_training_photos": len(excluded),
             "summary": summarise_photos(labelled, rows)}, sample or None)
