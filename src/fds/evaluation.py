"""``evaluate(cfg)`` (``eval/run.py``): score a checkpoint and baselines on held-out scans with GT displacement.

Held-out data: procedural scans generated from seeds no training run uses (``data.generate_start_seed``).
Every method predicts the **full** UV displacement map of each sample, the way inference does
(:func:`fds.pipeline.module_detail_map`: patch grid, Gaussian-weighted stitching), and all are scored by the
same code:

- ``dfdn``: the checkpoint, through the ``DFDNModule`` predict path;
- ``untrained``: the same network freshly initialised (what training must beat);
- ``zero``: no detail at all (the proxy alone);
- ``highpass``: the classical shading heuristic, displacement = k · high-pass(input luminance), with the
  scale k fitted by least squares on patches of the *training* scans.

Metrics per UV region of the face model (forehead, brows, eyes, nose, cheeks, mouth, chin) and ``all``, over
valid GT texels: displacement MAE and RMSE (mm); normal-angle error of the metric normals of the displacement
(mean, median, % of texels under 5°/10°/20°). Results go to ``<run>/eval/metrics.json`` and ``report.md`` and
to the configured loggers (W&B offline by default).
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import kornia
import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader

from fds.assets import atomic_write_bytes
from fds.data.sample_io import list_samples
from fds.data.scans import GeometryGridPatches, ScanFolder
from fds.facemodel import REGIONS

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


MapPredictor = Callable[[np.ndarray], np.ndarray]  # UV texture uint8 [R,R,3] → displacement mm [R,R]


def texel_errors(pred_mm: np.ndarray, gt_mm: np.ndarray, texel_mm: tuple[float, float]) -> tuple[np.ndarray, ...]:
    """Per-texel |error| (mm) and normal-angle error (degrees) of two displacement maps ``[R,R]`` in mm."""
    from fds.render.normals import normals_from_displacement

    p = torch.from_numpy(np.asarray(pred_mm, np.float32))[None, None]
    g = torch.from_numpy(np.asarray(gt_mm, np.float32))[None, None]
    n_p, n_g = normals_from_displacement(p, texel_mm), normals_from_displacement(g, texel_mm)
    angle = torch.rad2deg(torch.acos((n_p * n_g).sum(1).clamp(-1, 1)))[0].numpy()
    return np.abs(pred_mm - gt_mm), angle


def summarise(abs_err: np.ndarray, angle: np.ndarray) -> dict[str, float]:
    """Scalar metrics of per-texel errors (1-D arrays over the texels of one region)."""
    if abs_err.size == 0:
        return {}
    return {"disp_mae_mm": float(abs_err.mean()), "disp_rmse_mm": float(np.sqrt((abs_err**2).mean())),
            "normal_deg": float(angle.mean()), "normal_median_deg": float(np.median(angle)),
            **{f"normal_under_{t}deg": float((angle < t).mean()) for t in (5, 10, 20)}}


def score_maps(predict: MapPredictor, samples: list, fm) -> dict[str, dict[str, float]]:
    """Metrics per region and ``all`` over every sample's valid GT texels."""
    errs: dict[str, list[tuple[np.ndarray, np.ndarray]]] = defaultdict(list)
    for s in samples:
        r = s.resolution
        masks = fm.region_masks(r)
        valid = s.mask.astype(bool) & masks["face"]
        texel = tuple(float(t) for t in s.meta.get("texel_mm", (0.25 * 1024 / r,) * 2))
        abs_err, angle = texel_errors(predict(s.texture), s.displacement_mm, texel)
        for name in (*REGIONS, "all"):
            m = valid & (masks[name] if name != "all" else valid)
            errs[name].append((abs_err[m], angle[m]))
    return {name: summarise(np.concatenate([a for a, _ in v]), np.concatenate([g for _, g in v]))
            for name, v in errs.items() if sum(a.size for a, _ in v)}


def _module_map_predictor(module, fm, batch_size: int) -> MapPredictor:
    from fds.pipeline import module_detail_map

    def predict(texture: np.ndarray) -> np.ndarray:
        res = module_detail_map(module, texture, fm, batch_size=batch_size)
        if res.displacement_mm.shape != texture.shape[:2]:
            raise ValueError(f"the checkpoint works at {res.displacement_mm.shape[0]}² maps but the held-out "
                             f"samples are {texture.shape[0]}²: generate them at data.generator.resolution="
                             f"{res.displacement_mm.shape[0]}")
        return res.displacement_mm

    return predict


def _highpass_map_predictor(k: float, sigma: float = 4.0) -> MapPredictor:
    from kornia.color import rgb_to_hsv

    def predict(texture: np.ndarray) -> np.ndarray:
        rgb = torch.from_numpy(np.array(texture)).permute(2, 0, 1)[None].float() / 255
        return (k * highpass(2 * rgb_to_hsv(rgb)[:, 2:3], sigma))[0, 0].numpy()

    return predict


def evaluate(cfg: DictConfig) -> dict:
    """Score ``cfg.ckpt`` and the baselines on ``cfg.data``; returns ``{method: {region: {metric: value}}}``."""
    from fds.facemodel import load_face_model
    from fds.models.checkpoint import load_detail_module

    if cfg.get("seed") is not None:
        torch.manual_seed(int(cfg.seed))
    device = ("cuda" if torch.cuda.is_available() else "cpu") if cfg.device == "auto" else cfg.device
    module = load_detail_module(cfg.ckpt, device)
    scale = float(module.fds_meta["disp_scale_mm"])
    dm = instantiate(cfg.data)
    dm.prepare_data()
    held_out = ScanFolder(root=dm.data_dir)
    samples = [held_out[i] for i in range(min(len(held_out), cfg.max_samples or len(held_out)))]
    fm = load_face_model(str(samples[0].meta.get("face_model", "sfm")), dm.hparams.assets_dir)
    fit_folders = list_samples(Path(cfg.highpass_fit_dir))[: cfg.highpass_fit_samples]
    if not fit_folders:
        raise FileNotFoundError(f"highpass_fit_dir={cfg.highpass_fit_dir} holds no scan samples to fit the "
                                "heuristic's scale on (point it at the training scans)")
    fit_set = GeometryGridPatches(ScanFolder(folders=fit_folders), max_patches=64, regions=dm.regions,
                                  patch_size=dm.hparams.patch_size, channels=dm.channels, disp_scale_mm=scale,
                                  assets_dir=dm.hparams.assets_dir)
    k = fit_highpass_scale(DataLoader(fit_set, batch_size=cfg.batch_size), scale)
    untrained = instantiate(OmegaConf.create(module.fds_meta["model_config"])).to(device).eval()
    untrained.fds_meta = module.fds_meta
    methods: dict[str, MapPredictor] = {
        "dfdn": _module_map_predictor(module, fm, cfg.batch_size),
        "untrained": _module_map_predictor(untrained, fm, cfg.batch_size),
        "zero": lambda texture: np.zeros(texture.shape[:2], np.float32),
        "highpass": _highpass_map_predictor(k),
    }
    results = {name: score_maps(fn, samples, fm) for name, fn in methods.items()}
    out = Path(cfg.paths.output_dir) / "eval"
    payload = {"checkpoint": str(cfg.ckpt), "held_out_samples": len(samples),
               "seeds": [s.meta.get("seed") for s in samples], "highpass_k_mm": k, "results": results}
    atomic_write_bytes(out / "metrics.json", [json.dumps(payload, indent=2).encode()])
    atomic_write_bytes(out / "report.md", [report_markdown(payload).encode()])
    for lg in instantiate_loggers(cfg):
        lg.log_metrics({f"eval/{m}/{region}/{k_}": v for m, regions in results.items()
                        for region, vals in regions.items() for k_, v in vals.items()})
        if type(lg).__name__ == "WandbLogger":
            lg.experiment.finish()
    print(report_markdown(payload))
    return results


def instantiate_loggers(cfg: DictConfig) -> list:
    from fds.training import instantiate_group

    return instantiate_group(cfg.get("logger"))


def report_markdown(payload: dict) -> str:
    """A markdown table: one row per method × region."""
    lines = [f"Held-out procedural scans: {payload['held_out_samples']} full UV maps; checkpoint "
             f"`{Path(payload['checkpoint']).name}`; high-pass scale k = {payload['highpass_k_mm']:.4f} mm.", "",
             "| method | region | MAE (mm) | RMSE (mm) | normal mean (°) | median (°) | < 5° | < 10° | < 20° |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for method, regions in payload["results"].items():
        for region in sorted(regions, key=lambda r: (r != "all", r)):
            v = regions[region]
            lines.append(f"| {method} | {region} | {v['disp_mae_mm']:.4f} | {v['disp_rmse_mm']:.4f} | "
                         f"{v['normal_deg']:.2f} | {v['normal_median_deg']:.2f} | {v['normal_under_5deg']:.1%} | "
                         f"{v['normal_under_10deg']:.1%} | {v['normal_under_20deg']:.1%} |")
    return "\n".join(lines) + "\n"
