"""Where a detail network reads the photo and where it does not: UV-space agreement with the GT on photo-level
samples, split by the photo's face width, the head's age, its yaw and the camera's effects.

    python benchmarks/detail_by_condition.py DATA_DIR default=checkpoints/dfdn_lite.safetensors other=PATH ...
        [--per-sample-csv FILE]

DATA_DIR holds photo-level samples (datasets/generate_photo_scans.py; give seeds no checkpoint trained on). For
every sample and checkpoint: the network's full displacement map of the sample's unwrap (patch grid, as
inference runs it, without the fade at unseen texels) against the sample's GT in the fitted UV, both as detail
normals band-passed like validation (``fds.metrics.UV_DETAIL_BAND_TEXELS``), inside the network's zones, the
chart and the texels the photo sees. Prints Pearson r and the RMS amplitude ratio (prediction / GT) pooled over
the samples of each bin, and each checkpoint's r over the first one's. Then, for the first checkpoint, the Spearman
rank correlation of each sample's own r with each condition: which photos it reads well. Photos of one head share
that head, so these are descriptive, not tests. ``--per-sample-csv`` writes each sample's conditions and r.
"""

from __future__ import annotations

import argparse
import csv
import math
import time
from pathlib import Path

import numpy as np
import torch
from scipy import stats

from fds.data.sample_io import list_samples, read_sample
from fds.data.scans import ScanFolder, sample_texel_mm
from fds.detail.predictor import DetailPredictor
from fds.facemodel import zone_mask
from fds.metrics import UV_DETAIL_BAND_TEXELS, DetailAgreement, detail_band, detail_normals_xy

# (name, key of the sample's conditions, bin edges): face width in the photo (px), age (0 ≈ 20 y, 1 ≈ 80 y), |yaw|
# (°), the camera's effects as `fds.data.photo_render` draws them: optical blur σ (photo px; 0–1, and 15 % of photos
# 0.5–1.5 more), JPEG quality (45–95), resolution loss (30 % of photos: down- and upsampled by 1.2–2; 1 = none)
BINS = (("face width (px)", "face_px", (150, 250, 500, 1000)), ("age (0-1)", "age", (0.0, 0.4, 0.7, 1.0)),
        ("yaw, either side (deg)", "yaw", (0, 20, 35, 50)), ("camera blur σ (px)", "blur_px", (0, 0.5, 1, 2.5)),
        ("JPEG quality", "jpeg", (45, 70, 96)), ("resolution loss (x)", "resolution_loss", (1, 1.01, 2)))


def conditions(meta: dict) -> dict[str, float]:
    """The sample's face width (px), age, |yaw| (°) and camera effects (blur σ in photo px, JPEG quality, resolution
    loss factor, shot-noise variance per unit linear signal) from its ``sample.json``; NaN where it has none or
    where they were drawn but not applied (``PhotoConfig.camera_effects=False``)."""
    photo = meta.get("photo") or {}
    fx = photo.get("camera_effects") or {}
    fx = {} if fx.get("applied") is False else fx
    return {"face_px": float(photo.get("face_width_px", math.nan)), "age": float(meta["head"]["age"]),
            "yaw": abs(float((photo.get("pose_deg") or {}).get("yaw", math.nan))),
            "blur_px": float(fx.get("blur_sigma_px", math.nan)), "jpeg": float(fx.get("jpeg_quality", math.nan)),
            "resolution_loss": float(fx.get("resolution_loss", 1.0)) if fx else math.nan,
            "shot_noise": float((fx.get("noise") or {}).get("shot", math.nan))}


def band_normals(displacement_mm: np.ndarray, texel_mm: list[float], valid: torch.Tensor) -> torch.Tensor:
    """``[1, 2, R, R]`` band-passed detail normals (x, y) of a displacement map in mm."""
    low, high = UV_DETAIL_BAND_TEXELS
    d = torch.from_numpy(np.ascontiguousarray(displacement_mm, np.float32))[None, None]
    return detail_band(detail_normals_xy(d, torch.tensor(texel_mm)[None]), high, low, valid)


def scored_texels(sample, face_model, regions, zones: dict[int, np.ndarray]) -> torch.Tensor:
    """``[1, 1, R, R]`` float mask of the texels scored: on the sample's chart, seen by its photo, inside the
    network's ``regions``. ``zones`` caches their union per map size R."""
    n = sample.resolution
    if n not in zones:
        zones[n] = np.logical_or.reduce([zone_mask(face_model, n, r) for r in regions])
    return torch.from_numpy((sample.mask & (sample.visibility > 0) & zones[n]).astype(np.float32))[None, None]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data_dir", type=Path)
    ap.add_argument("ckpts", nargs="+", metavar="NAME=PATH", help="checkpoints; the first is the baseline")
    ap.add_argument("--max-samples", type=int, default=None)
    ap.add_argument("--per-sample-csv", type=Path, default=None, help="write each sample's conditions and r here")
    args = ap.parse_args(argv)
    named = [c.split("=", 1) if "=" in c else (Path(c).stem, c) for c in args.ckpts]
    predictors = {name: DetailPredictor.from_checkpoint(path) for name, path in named}
    first = next(iter(predictors.values()))
    folders = list_samples(args.data_dir)[: args.max_samples]
    source = ScanFolder(folders=folders)  # each photo-level sample's fitted proxy, for checkpoints that read it
    if not folders:
        raise SystemExit(f"{args.data_dir} holds no samples: write some with datasets/generate_photo_scans.py")
    zones: dict[int, np.ndarray] = {}
    acc: dict[tuple[str, str, int], DetailAgreement] = {}  # (checkpoint, condition, bin) → pooled sums
    counts: dict[tuple[str, int], int] = {}
    rows: list[dict] = []  # per sample: its name, conditions and the first checkpoint's r
    t0 = time.perf_counter()
    for i, folder in enumerate(folders):
        s = read_sample(folder)
        valid = scored_texels(s, first.face_model, first.meta.regions, zones)
        tm = sample_texel_mm(s)
        gt = band_normals(s.displacement_mm, tm, valid)
        cond = conditions(s.meta)
        keys = [("all", 0)] + [(key, int(np.digitize(cond[key], edges[1:-1]))) for _, key, edges in BINS
                               if math.isfinite(cond[key])]
        for k in keys:
            counts[k] = counts.get(k, 0) + 1
        fit = source.fit(i) if any(p.needs_fit for p in predictors.values()) else None
        for j, (name, p) in enumerate(predictors.items()):
            pred = band_normals(p.full_map(s.texture, fit).displacement_mm, tm, valid)
            for key, b in keys:
                acc.setdefault((name, key, b), DetailAgreement()).update(pred, gt, valid)
            if j == 0:
                own = DetailAgreement()
                own.update(pred, gt, valid)
                rows.append({"sample": folder.name, **cond, "r": own.compute()["detail_r"]})
        print(f"[{i + 1}/{len(folders)}] {folder.name} ({time.perf_counter() - t0:.0f} s)", flush=True)

    def cell(name: str, key: str, b: int) -> str:
        a = acc.get((name, key, b))
        if a is None:
            return "–"
        c = a.compute()
        return f"{c['detail_r']:.3f} / {c['amplitude_ratio']:.2f}"

    names = list(predictors)
    print(f"\n{len(folders)} samples of {args.data_dir}; r / amplitude ratio of the band-passed detail normals "
          f"({UV_DETAIL_BAND_TEXELS[0]:g}-{UV_DETAIL_BAND_TEXELS[1]:g} texels), pooled per bin\n")
    print("| condition | bin | samples | " + " | ".join(names) + " |")
    print("|---|---|---:|" + "---:|" * len(names))
    print(f"| all | – | {len(folders)} | " + " | ".join(cell(n, "all", 0) for n in names) + " |")
    for title, key, edges in BINS:
        for b in range(len(edges) - 1):
            print(f"| {title} | {edges[b]:g}-{edges[b + 1]:g} | {counts.get((key, b), 0)} | "
                  + " | ".join(cell(n, key, b) for n in names) + " |")
    base = acc[(names[0], "all", 0)].compute()["detail_r"]
    print("\nr over " + names[0] + ": " + ", ".join(
        f"{n} {acc[(n, 'all', 0)].compute()['detail_r'] / base:.2f}x" for n in names))
    print(f"\n{names[0]}: Spearman rank correlation of each sample's r with its conditions ({len(rows)} samples)")
    for key in rows[0]:
        if key in ("sample", "r"):
            continue
        x, y = np.array([r[key] for r in rows]), np.array([r["r"] for r in rows])
        ok = np.isfinite(x) & np.isfinite(y)
        if ok.sum() >= 3 and np.ptp(x[ok]) > 0:
            rho = stats.spearmanr(x[ok], y[ok]).statistic
            print(f"  {key}: rho {rho:+.2f} ({int(ok.sum())} samples)")
    if args.per_sample_csv is not None:
        tmp = args.per_sample_csv.with_name(args.per_sample_csv.name + ".tmp")
        with tmp.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
        tmp.replace(args.per_sample_csv)
        print(f"per-sample rows: {args.per_sample_csv}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
