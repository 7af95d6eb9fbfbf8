"""``evaluate(cfg)`` (``eval/run.py``): score a checkpoint and baselines on held-out scans with GT displacement.

Held-out data: procedural scans generated from seeds no training run uses (``data.scans.generate_start_seed``),
at the checkpoint's own units. Every method predicts the **full** UV displacement map of each sample, the way
inference does (:meth:`fds.detail.DetailPredictor.full_map`: patch grid, Gaussian-weighted stitching), and all
are scored by the same code:

- ``dfdn``: the checkpoint;
- ``untrained``: the same network freshly initialised from ``seed`` (what training must beat);
- ``zero``: no detail at all (the proxy alone);
- ``highpass``: the classical shading heuristic, displacement = k · high-pass(input luminance), with the
  scale k fitted by least squares on patches of the *training* scans (once: ``highpass.k_mm``).

Metrics per UV region of the face model (forehead, brows, eyes, nose, cheeks, mouth, chin) and ``all``, over
valid GT texels: displacement MAE and RMSE (mm); normal-angle error of the metric tangent-space normals of the
displacement (mean, median, % of texels under 5°/10°/20°); SSIM and PSNR (dB) of the normal maps as images
(n + 1)/2 (``fds.metrics``, kornia). The same methods are scored on real photos by :mod:`fds.evaluation_photos`.
Results go to ``<run>/eval/`` (``metrics.json``, ``report.md`` with figures, ``readme_table.md``; see
:func:`write_outputs`) and to the configured loggers (W&B offline by default: scalars, tables, figures).
"""

from __future__ import annotations

import json
import logging
import time
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import kornia
import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict
from torch.utils.data import DataLoader

from fds.data.patches import needs_cue, needs_scale
from fds.data.sample_io import list_samples
from fds.data.scans import GeometryGridPatches, ScanFolder, sample_texel_mm
from fds.detail import DetailPredictor, FitRequired
from fds.facemodel import REGIONS, region_masks
from fds.fileio import atomic_write_bytes
from fds.metrics import normal_error, normal_psnr_db, normal_ssim_map, wrinkle_relief_mask
from fds.models.checkpoint import CheckpointMeta
from fds.progress import progress
from fds.reports import (
    eval_report_markdown,
    plot_angle_histograms,
    plot_region_bars,
    plot_rerenders,
    plot_uv_error_maps,
    readme_table,
    replace_marked_block,
)

if TYPE_CHECKING:
    from fds.evaluation_photos import MapPredictor

log = logging.getLogger(__name__)


def highpass(x: torch.Tensor, sigma: float = 4.0) -> torch.Tensor:
    """Input minus its Gaussian blur (σ in texels): the fine shading variation of a patch ``[B,C,H,W]``."""
    k = int(2 * round(3 * sigma) + 1)
    return x - kornia.filters.gaussian_blur2d(x, (k, k), (sigma, sigma), border_type="reflect")


def fit_highpass_scale(loader: DataLoader, disp_scale_mm: float, max_batches: int = 8) -> float:
    """Least-squares k (mm per input unit) with displacement_mm ≈ k · high-pass(input) on GT patches."""
    num = den = 0.0
    for i, b in enumerate(loader):
        if i >= max_batches:
            break
        h = highpass(b["input"].mean(1, keepdim=True))
        m = b["mask"]
        num += float((h * b["displacement"] * disp_scale_mm * m).sum())
        den += float((h * h * m).sum())
    return num / max(den, 1e-12)



#: Bin edges (degrees) of the normal-angle histograms kept in metrics.json (the report's histogram figure).
ANGLE_BINS_DEG = np.concatenate([np.arange(0.0, 20.0, 0.25), np.arange(20.0, 90.5, 2.5)])


@dataclass
class MapErrors:
    """Per-texel errors of one predicted displacement map against its GT, all ``[R, R]`` float32."""

    abs_mm: np.ndarray  # |pred − GT| displacement, mm
    angle_deg: np.ndarray  # angle between the metric tangent-space normals of pred and GT, degrees
    ssim: np.ndarray  # SSIM of the two normal maps (fds.metrics.normal_ssim_map)
    normals: tuple[torch.Tensor, torch.Tensor]  # (pred, GT) unit normals [1, 3, R, R]


def map_errors(pred_mm: np.ndarray, gt_mm: np.ndarray, texel_mm: tuple[float, float]) -> MapErrors:
    """Per-texel errors of two displacement maps ``[R, R]`` in mm with ``texel_mm`` = (u, v) mm per texel; the
    normal-angle error is :func:`fds.metrics.normal_error`'s, the one training validates on."""
    p = torch.from_numpy(np.asarray(pred_mm, np.float32))[None, None]
    g = torch.from_numpy(np.asarray(gt_mm, np.float32))[None, None]
    e = normal_error(p, g, texel_mm)
    return MapErrors(np.abs(pred_mm - gt_mm).astype(np.float32), e.angle_deg[0, 0].numpy(),
                     normal_ssim_map(e.pred_normals, e.target_normals)[0, 0].numpy(),
                     (e.pred_normals, e.target_normals))


def summarise(abs_err: np.ndarray, angle: np.ndarray) -> dict[str, float]:
    """Scalar metrics of per-texel errors (1-D arrays over the texels of one region)."""
    if abs_err.size == 0:
        return {}
    return {"disp_mae_mm": float(abs_err.mean()), "disp_rmse_mm": float(np.sqrt((abs_err**2).mean())),
            "normal_deg": float(angle.mean()), "normal_median_deg": float(np.median(angle)),
            **{f"normal_under_{t}deg": float((angle < t).mean()) for t in (5, 10, 20)}}


@dataclass
class ScanScores:
    """One method on the held-out scans: metrics per region, the normal-angle histogram over every valid texel
    (counts per ``ANGLE_BINS_DEG`` bin) and the per-texel angle map of the first sample (NaN off the face)."""

    metrics: dict[str, dict[str, float]]
    angle_hist: np.ndarray
    first_angle_map: np.ndarray | None


def wrinkle_mask(gt_mm: np.ndarray, texel_mm: tuple[float, float], sigma_texels: float = 2.0,
                 min_deg: float = 1.0) -> np.ndarray:
    """Texels ``bool [R,R]`` on wrinkle relief of a GT map in mm (:func:`fds.metrics.wrinkle_relief_mask`)."""
    g = torch.from_numpy(np.asarray(gt_mm, np.float32))[None, None]
    return wrinkle_relief_mask(g, texel_mm, sigma_texels, min_deg)[0, 0].numpy()


def score_maps(predict: MapPredictor, samples: list, fm) -> ScanScores:
    """Metrics per region, ``all`` over every sample's valid GT texels, and ``wrinkles`` over those of them on
    wrinkle relief (:func:`wrinkle_mask`).

    MAE, RMSE and angle statistics pool the texels of every sample; normal-map SSIM and PSNR (dB) are computed
    per sample over the region's texels and averaged over the samples (the per-image convention)."""
    pooled: dict[str, list[tuple[np.ndarray, np.ndarray]]] = defaultdict(list)
    per_sample: dict[str, list[tuple[float, float]]] = defaultdict(list)
    hist, first = np.zeros(len(ANGLE_BINS_DEG) - 1, np.int64), None
    for s in progress(samples, "held-out scans", unit="scan"):
        r = s.resolution
        masks = region_masks(fm, r)
        valid = s.mask.astype(bool) & masks["face"]
        du, dv = sample_texel_mm(s)
        texel = (du, dv)
        e = map_errors(predict(s.texture, None), s.displacement_mm, texel)  # procedural scans: no photo, no fit
        masks = {**masks, "all": valid, "wrinkles": valid & wrinkle_mask(s.displacement_mm, texel)}
        for name in ("all", "wrinkles", *REGIONS):
            m = valid & masks[name]
            if not m.any():
                continue
            pooled[name].append((e.abs_mm[m], e.angle_deg[m]))
            psnr = normal_psnr_db(*e.normals, torch.from_numpy(m)[None, None])
            per_sample[name].append((float(e.ssim[m].mean()), float(psnr)))
        hist += np.histogram(np.clip(e.angle_deg[valid], 0, ANGLE_BINS_DEG[-1]), ANGLE_BINS_DEG)[0]
        if first is None:
            first = np.where(valid, e.angle_deg, np.nan).astype(np.float32)
    metrics = {}
    for name, v in pooled.items():
        ssim, psnr = np.array(per_sample[name]).T
        metrics[name] = {**summarise(np.concatenate([a for a, _ in v]), np.concatenate([g for _, g in v])),
                         "normal_ssim": float(ssim.mean()), "normal_psnr_db": float(psnr.mean())}
    return ScanScores(metrics, hist, first)


def network_map_predictor(predictor: DetailPredictor) -> MapPredictor:
    """A checkpoint's method: the full map of a held-out texture, which must be at the checkpoint's density."""

    def predict(texture: np.ndarray, fit=None) -> np.ndarray:
        res = predictor.full_map(texture, fit)
        if res.displacement_mm.shape != texture.shape[:2]:
            raise ValueError(f"the checkpoint works at {res.displacement_mm.shape[0]}² maps but the held-out "
                             f"samples are {texture.shape[0]}²: move data.scans.data_dir away so they are generated "
                             "again at the checkpoint's resolution")
        return res.displacement_mm

    return predict


def _highpass_map_predictor(k: float, sigma: float = 4.0) -> MapPredictor:
    from kornia.color import rgb_to_hsv

    def predict(texture: np.ndarray, fit=None) -> np.ndarray:
        rgb = torch.from_numpy(np.array(texture)).permute(2, 0, 1)[None].float() / 255
        return (k * highpass(2 * rgb_to_hsv(rgb)[:, 2:3], sigma))[0, 0].numpy()

    return predict


def held_out_samples(cfg: DictConfig) -> list:
    """The held-out scans of ``cfg.data.scans`` (generated there first when the folder is empty: a fresh clone
    needs nothing else), the first ``max_samples`` of them."""
    dm = instantiate(cfg.data).scans
    if not list_samples(dm.data_dir):
        log.info("generating %d held-out scans (seeds from %d) into %s", dm.hparams.num_generate,
                 dm.hparams.generate_start_seed, dm.data_dir)
    dm.prepare_data()
    held_out = ScanFolder(root=dm.data_dir)
    return [held_out[i] for i in range(min(len(held_out), cfg.max_samples or len(held_out)))]


def fitted_highpass_scale(fit_dir: str | Path, num_samples: int, meta: CheckpointMeta, batch_size: int,
                          assets_dir: str | None = None) -> float:
    """The heuristic's k (mm per unit of high-passed luminance), fitted on grid patches of the first
    ``num_samples`` training scans under ``fit_dir``, cut as the checkpoint's (``meta``) patches are."""
    fit_folders = list_samples(Path(fit_dir))[:num_samples]
    if not fit_folders:
        raise FileNotFoundError(f"highpass.fit_dir={fit_dir} holds no scan samples to fit the heuristic's scale "
                                "on: point it at the training scans, or set it to null to use highpass.k_mm")
    # the heuristic reads brightness, never the cue or the photo scale
    channels = "v" if needs_cue(meta.channels) or needs_scale(meta.channels) else meta.channels
    fit_set = GeometryGridPatches(ScanFolder(folders=fit_folders), max_patches=64, regions=meta.regions,
                                  patch_size=meta.patch_size, channels=channels,
                                  disp_scale_mm=meta.disp_scale_mm, assets_dir=assets_dir)
    return fit_highpass_scale(DataLoader(fit_set, batch_size=batch_size), meta.disp_scale_mm)


def detail_methods(predictor: DetailPredictor, k_mm: float, seed: int = 0) -> dict[str, MapPredictor]:
    """Every method scored: the checkpoint (``predictor``), its networks untrained (initialised from ``seed``, same
    settings), zero detail, the high-pass heuristic with scale ``k_mm``."""
    return {
        "dfdn": network_map_predictor(predictor),
        "untrained": network_map_predictor(predictor.untrained(seed)),
        "zero": lambda texture, fit: np.zeros(texture.shape[:2], np.float32),
        "highpass": _highpass_map_predictor(k_mm),
    }


def comparison_methods(compare: Mapping[str, str], meta: CheckpointMeta, reference: DetailPredictor
                       ) -> dict[str, MapPredictor]:
    """Further checkpoints scored beside ``cfg.ckpt``: ``{name: path}`` → ``{"dfdn_<name>": predictor}`` (e.g. the
    shipped weights next to a new training run). Each must work at the evaluated checkpoint's units (map resolution,
    patch size, mm per unit, face model), since every method is scored on the same maps."""
    from fds.models.checkpoint import load_detail_module

    methods: dict[str, MapPredictor] = {}
    for name, path in compare.items():
        other = load_detail_module(path, str(reference.module.device))
        theirs = (other.meta.map_resolution, other.meta.patch_size, other.meta.disp_scale_mm, other.meta.face_model)
        ours = (meta.map_resolution, meta.patch_size, meta.disp_scale_mm, meta.face_model)
        if theirs != ours:
            raise ValueError(f"compare.{name}={path} works at (map resolution, patch size, mm per unit, face model) "
                             f"{theirs}, the evaluated checkpoint at {ours}: compare checkpoints of the same units")
        methods[f"dfdn_{name}"] = network_map_predictor(reference.with_module(other, path))
    return methods


def checkpoint_units(cfg: DictConfig, meta: CheckpointMeta) -> None:
    """Set ``cfg.units`` to the units the checkpoint was trained at (``meta``), so the held-out scans are
    generated at its map resolution and cut into its patches (``data.scans.*`` read ``${units.*}``)."""
    units = {"disp_scale_mm": meta.disp_scale_mm, "patch_size": meta.patch_size, "regions": list(meta.regions),
             "map_resolution": meta.map_resolution}
    with open_dict(cfg):
        cfg.units = OmegaConf.merge(cfg.get("units") or {}, units)


def evaluate(cfg: DictConfig) -> dict:
    """Score ``cfg.ckpt`` and the baselines on held-out scans and (``cfg.photos.enabled``) real photos.

    Writes ``<run>/eval/``: ``metrics.json``, ``report.md`` with its figures, ``readme_table.md`` (and replaces
    the results block of ``cfg.readme`` when set); logs to the configured loggers. Returns the metrics payload:
    ``results`` = ``{method: {region: {metric: value}}}`` on the scans, ``photos`` = the real-photo metrics.
    """
    from fds.facemodel import load_face_model
    from fds.models.checkpoint import load_detail_module

    device = ("cuda" if torch.cuda.is_available() else "cpu") if cfg.device == "auto" else cfg.device
    module = load_detail_module(cfg.ckpt, device)
    checkpoint_units(cfg, module.meta)
    samples = held_out_samples(cfg)
    fm = load_face_model(str(samples[0].meta.get("face_model", "sfm")), cfg.paths.assets_dir)
    # the module itself (BatchNorm not folded): evaluation scores the reference path of the networks
    predictor = DetailPredictor(module, fm, batch_size=int(cfg.batch_size), fused=False, source=cfg.ckpt,
                                flip_average=bool(cfg.get("flip_average", True)),
                                patch_stride=None if cfg.get("patch_stride") is None else int(cfg.patch_stride))
    hp = cfg.highpass
    k = float(hp.k_mm) if hp.fit_dir is None else fitted_highpass_scale(
        hp.fit_dir, int(hp.fit_samples), module.meta, int(cfg.batch_size), cfg.paths.assets_dir)
    methods = detail_methods(predictor, k, int(cfg.get("seed") or 0))
    methods.update(comparison_methods(cfg.get("compare") or {}, module.meta, predictor))
    scans, without_photo = {}, []
    for i, (name, fn) in enumerate(methods.items()):
        t = time.perf_counter()
        log.info("held-out scans: method %d/%d, %s", i + 1, len(methods), name)
        try:
            scans[name] = score_maps(fn, samples, fm)
        except FitRequired:  # reads the photo scale: procedural scans were never photographed
            without_photo.append(name)
            log.warning("held-out scans: %s not scored (it reads the photo scale, and procedural scans have no "
                        "photo); the photo-level benchmark scores it", name)
            continue
        log.info("held-out scans: %s scored in %.0f s", name, time.perf_counter() - t)
    photo_sample = None
    payload = {"checkpoint": str(cfg.ckpt), "held_out_samples": len(samples),
               "seeds": [s.meta.get("seed") for s in samples], "highpass_k_mm": k,
               "results": {name: s.metrics for name, s in scans.items()}, "not_scored_on_scans": without_photo,
               "normal_angle_hist": {"bins_deg": ANGLE_BINS_DEG.tolist(),
                                     "counts": {name: s.angle_hist.tolist() for name, s in scans.items()}}}
    if cfg.photos.enabled:
        from fds.evaluation_photos import evaluate_photos

        payload["photos"], photo_sample = evaluate_photos(cfg, methods, predictor, device)
    if cfg.get("photo_level") is not None and cfg.photo_level.enabled:
        from fds.evaluation_photo_level import evaluate_photo_level

        level_methods = dict(methods)
        if cfg.photo_level.get("highpass_fit_dir"):  # the heuristic's scale fitted on photo-level training samples
            level_methods["highpass"] = _highpass_map_predictor(fitted_highpass_scale(
                cfg.photo_level.highpass_fit_dir, int(hp.fit_samples), module.meta, int(cfg.batch_size),
                cfg.paths.assets_dir))
        payload["photo_level"] = evaluate_photo_level(
            cfg.photo_level, level_methods, module.meta.map_resolution, module.meta.face_model,
            instantiate(cfg.data).scans.make_photo_generator(), cfg.paths.assets_dir)
    figures = write_outputs(payload, {name: s.first_angle_map for name, s in scans.items()},
                            Path(cfg.paths.output_dir) / "eval", cfg.get("readme"), photo_sample)
    log_results(instantiate_loggers(cfg), payload, figures)
    print((Path(cfg.paths.output_dir) / "eval" / "readme_table.md").read_text())
    return payload


def write_outputs(payload: dict, angle_maps: dict[str, np.ndarray | None], out: Path, readme: str | None = None,
                  photo_sample: dict | None = None) -> dict[str, Path]:
    """``metrics.json``, the figures, ``report.md`` and ``readme_table.md`` into ``out``; the results block of
    ``readme`` replaced when given. Returns the figures by name."""
    hist = payload["normal_angle_hist"]
    figures = {"normal error histograms": plot_angle_histograms(hist["bins_deg"], hist["counts"],
                                                                out / "normal_error_hist.png"),
               "per-region errors": plot_region_bars(payload["results"], out / "region_bars.png"),
               "UV normal-error maps (first sample)": plot_uv_error_maps(
                   {m: a for m, a in angle_maps.items() if a is not None}, out / "uv_error_maps.png")}
    if photo_sample:
        figures[f"re-renders of {photo_sample['photo']}"] = plot_rerenders(photo_sample, out / "photo_rerenders.png")
    atomic_write_bytes(out / "metrics.json", [json.dumps(payload, indent=2).encode()])
    atomic_write_bytes(out / "report.md", [eval_report_markdown(payload, figures).encode()])
    table = readme_table(payload)
    atomic_write_bytes(out / "readme_table.md", [table.encode()])
    if readme:
        replace_marked_block(readme, table)
        log.info("results table written into %s", readme)
    return figures


def scalar_metrics(payload: dict) -> dict[str, float]:
    """Flat ``eval/...`` scalars for loggers: scans per method/region/metric, photo summaries."""
    out = {f"eval/scans/{m}/{region}/{k}": v for m, regions in payload["results"].items()
           for region, vals in regions.items() for k, v in vals.items()}
    level = (payload.get("photo_level") or {}).get("summary", {})
    for m, vals in level.get("overall", {}).items():
        out.update({f"eval/photo_level/{m}/{k}": v for k, v in vals.items()})
        if m in level.get("line_relief", {}):
            out[f"eval/photo_level/{m}/line_relief"] = level["line_relief"][m]
    for group in ("by_lighting", "by_region"):
        for g, per in level.get(group, {}).items():
            out.update({f"eval/photo_level/{g}/{m}/{k}": v for m, vals in per.items() for k, v in vals.items()})
    heads = level.get("heads") or {}
    for m, vals in heads.get("interval", {}).items():  # bootstrap over heads (fds.evaluation_photo_level)
        for k, (lo, hi) in vals.items():
            out[f"eval/photo_level/{m}/{k}_lo"], out[f"eval/photo_level/{m}/{k}_hi"] = lo, hi
    for m, vals in heads.get("paired", {}).items():
        for k, (mean, lo, hi) in vals.items():
            out.update({f"eval/photo_level/{m}/{k}_minus_{heads['baseline']}{suffix}": v
                        for suffix, v in (("", mean), ("_lo", lo), ("_hi", hi))})
    summary = (payload.get("photos") or {}).get("summary", {})
    for group in ("labelled", "wild"):
        for k, v in summary.get(group, {}).items():
            if isinstance(v, dict):
                out.update({f"eval/photos/{m}/{k}": x for m, x in v.items()})
            else:
                out[f"eval/photos/{group}/{k}"] = float(v)
    return out


REGION_COLUMNS = ("disp_mae_mm", "disp_rmse_mm", "normal_deg", "normal_median_deg", "normal_under_5deg",
                  "normal_under_10deg", "normal_under_20deg", "normal_ssim", "normal_psnr_db")


PHOTO_LEVEL_COLUMNS = ("detail_r", "amplitude_ratio", "normal_deg", "normal_deg_zero", "pixels")


def log_results(loggers: list, payload: dict, figures: dict[str, Path]) -> None:
    """Scalars to every logger; to those that take them (W&B) a table of per-region metrics per method, a table
    of per-photo metrics, and the figures as images. Each logger is finalised (the W&B run is closed)."""
    region_rows = [[m, r, *(v.get(k) for k in REGION_COLUMNS)] for m, regions in payload["results"].items()
                   for r, v in regions.items()]
    photos = payload.get("photos") or {}
    methods = list(payload["results"])
    photo_rows = [[r["photo"], r["ok"], r.get("reprojection_px"), r.get("reprojection_nme"),
                   *(r.get("photometric_l1", {}).get(m) for m in methods)] for r in photos.get("wild", [])]
    for lg in loggers:
        lg.log_metrics(scalar_metrics(payload))
        if hasattr(lg, "log_table"):
            lg.log_table(key="eval/scans_per_region", columns=["method", "region", *REGION_COLUMNS], data=region_rows)
            level_rows = [[r["photo"], r["lighting"], m, reg, *(v.get(k) for k in PHOTO_LEVEL_COLUMNS),
                           r["line_relief"].get(m)]
                          for r in (payload.get("photo_level") or {}).get("rows", [])
                          for m, regions in r["scores"].items() for reg, v in regions.items()]
            if level_rows:
                lg.log_table(key="eval/photo_level_per_photo", data=level_rows,
                             columns=["photo", "lighting", "method", "region", *PHOTO_LEVEL_COLUMNS, "line_relief"])
            if photo_rows:
                lg.log_table(key="eval/wild_photos", data=photo_rows, columns=[
                    "photo", "proxy_ok", "reprojection_px", "reprojection_nme", *(f"photo_l1_{m}" for m in methods)])
        if hasattr(lg, "log_image"):
            for name, path in figures.items():
                lg.log_image(key=f"eval/{Path(path).stem}", images=[str(path)], caption=[name])
        lg.save()
        lg.finalize("success")
        if type(lg).__name__ == "WandbLogger":
            lg.experiment.finish()


def instantiate_loggers(cfg: DictConfig) -> list:
    from fds.loggers import instantiate_group

    return instantiate_group(cfg.get("logger"))
