"""``evaluate(cfg)`` (``eval/run.py``): score a checkpoint and baselines on held-out scans with GT displacement.

Held-out data: procedural scans generated from seeds no training run uses (``data.generate_start_seed``),
iterated as the full-map patch grid of each patch zone. Methods, all scored by the same code
(:mod:`fds.metrics`):

- ``dfdn``: the checkpoint, through the ``DFDNModule`` predict path;
- ``untrained``: the same network freshly initialised (what training must beat);
- ``zero``: no detail at all (the proxy alone);
- ``highpass``: the classical shading heuristic, displacement = k · high-pass(input luminance), with the
  scale k fitted by least squares on patches of the *training* scans.

Metrics per patch zone and overall: displacement MAE (mm) and mean normal-angle error (degrees) of the
metric normals of the displacement. Results go to ``<run>/eval/metrics.json`` and ``report.md`` and to the
configured loggers (W&B offline by default).
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import kornia
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader

from fds.assets import atomic_write_bytes
from fds.data.sample_io import list_samples
from fds.data.scans import GeometryGridPatches, ScanFolder
from fds.metrics import displacement_mae_mm, displacement_normal_deg

log = logging.getLogger(__name__)
Predictor = Callable[[dict], torch.Tensor]  # batch → displacement [B,1,P,P] in mm


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


def score(predict: Predictor, loader: DataLoader, disp_scale_mm: float) -> dict[str, dict[str, float]]:
    """Mean metrics per zone and ``all``, weighting each patch by its valid texels."""
    sums: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    with torch.no_grad():
        for b in loader:
            pred_mm, gt_mm, mask = predict(b).float(), b["displacement"] * disp_scale_mm, b["mask"]
            texel = b["texel_mm"].float().mean(1) if "texel_mm" in b else torch.full((len(mask),), 0.25)
            for i, region in enumerate(b["region"]):
                w = float(mask[i].sum())
                if w == 0:
                    continue
                sl = slice(i, i + 1)
                mae = float(displacement_mae_mm(pred_mm[sl], gt_mm[sl], mask[sl]))
                deg = float(displacement_normal_deg(pred_mm[sl], gt_mm[sl], float(texel[i]), mask[sl]))
                for key in (region, "all"):
                    sums[key]["disp_mae_mm"] += w * mae
                    sums[key]["normal_deg"] += w * deg
                    sums[key]["_w"] += w
    return {k: {m: v / s["_w"] for m, v in s.items() if m != "_w"} for k, s in sums.items()}


def _module_predictor(module) -> Predictor:
    def predict(b: dict) -> torch.Tensor:
        out = module.predict_step({"input": b["input"].to(module.device), "region": list(b["region"])}, 0)
        return out["displacement_mm"].cpu()

    return predict


def evaluate(cfg: DictConfig) -> dict:
    """Score ``cfg.ckpt`` and the baselines on ``cfg.data``; returns ``{method: {zone: {metric: value}}}``."""
    from fds.models.checkpoint import load_detail_module

    if cfg.get("seed") is not None:
        torch.manual_seed(int(cfg.seed))
    device = ("cuda" if torch.cuda.is_available() else "cpu") if cfg.device == "auto" else cfg.device
    module = load_detail_module(cfg.ckpt, device)
    scale = float(module.fds_meta["disp_scale_mm"])
    dm = instantiate(cfg.data)
    dm.prepare_data()
    folders = list_samples(dm.data_dir)
    common = dict(regions=dm.regions, patch_size=dm.hparams.patch_size, channels=dm.channels, disp_scale_mm=scale,
                  assets_dir=dm.hparams.assets_dir)
    held_out = GeometryGridPatches(ScanFolder(folders=folders), stride=cfg.stride, max_patches=cfg.max_patches,
                                   **common)
    loader = DataLoader(held_out, batch_size=cfg.batch_size, shuffle=False)
    fit_folders = list_samples(Path(cfg.highpass_fit_dir))[: cfg.highpass_fit_samples]
    if not fit_folders:
        raise FileNotFoundError(f"highpass_fit_dir={cfg.highpass_fit_dir} holds no scan samples to fit the "
                                "heuristic's scale on (point it at the training scans)")
    fit_loader = DataLoader(GeometryGridPatches(ScanFolder(folders=fit_folders), max_patches=64, **common),
                            batch_size=cfg.batch_size)
    k = fit_highpass_scale(fit_loader, scale)
    untrained = instantiate(OmegaConf.create(module.fds_meta["model_config"])).to(device).eval()
    methods: dict[str, Predictor] = {
        "dfdn": _module_predictor(module),
        "untrained": _module_predictor(untrained),
        "zero": lambda b: torch.zeros_like(b["displacement"]),
        "highpass": lambda b: k * highpass(b["input"].mean(1, keepdim=True)),
    }
    results = {name: score(fn, loader, scale) for name, fn in methods.items()}
    out = Path(cfg.paths.output_dir) / "eval"
    payload = {"checkpoint": str(cfg.ckpt), "held_out_samples": len(folders), "patches": len(held_out),
               "highpass_k_mm": k, "results": results}
    atomic_write_bytes(out / "metrics.json", [json.dumps(payload, indent=2).encode()])
    atomic_write_bytes(out / "report.md", [report_markdown(payload).encode()])
    for lg in instantiate_loggers(cfg):
        lg.log_metrics({f"eval/{m}/{zone}/{k_}": v for m, zones in results.items()
                        for zone, vals in zones.items() for k_, v in vals.items()})
        if type(lg).__name__ == "WandbLogger":
            lg.experiment.finish()
    print(report_markdown(payload))
    return results


def instantiate_loggers(cfg: DictConfig) -> list:
    from fds.training import instantiate_group

    return instantiate_group(cfg.get("logger"))


def report_markdown(payload: dict) -> str:
    """A markdown table: one row per method × zone."""
    lines = [f"Held-out procedural scans: {payload['held_out_samples']} samples, {payload['patches']} patches; "
             f"checkpoint `{Path(payload['checkpoint']).name}`; high-pass scale k = {payload['highpass_k_mm']:.3f} mm.",
             "", "| method | zone | displacement MAE (mm) | normal error (°) |", "|---|---|---:|---:|"]
    for method, zones in payload["results"].items():
        for zone in sorted(zones, key=lambda z: (z != "all", z)):
            v = zones[zone]
            lines.append(f"| {method} | {zone} | {v['disp_mae_mm']:.4f} | {v['normal_deg']:.2f} |")
    return "\n".join(lines) + "\n"
