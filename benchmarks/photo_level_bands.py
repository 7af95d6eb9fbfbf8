"""Where does the photo-level r go? The benchmark's σ = 3 px high-pass cut into spatial bands, per held-out photo.

For each photo the benchmark's fields (detail normals, camera frame, in the photo's pixel grid; see
``fds.evaluation_image``) are band-passed (difference of Gaussians, σ in photo pixels) over the scored mask:

- ``share``: the band's part of the GT's σ = 3 px high-passed variance (0–1 px ≈ pores and the finest lines on a
  large face; 1–3 px; 3–8 px lies outside the benchmark's band and is shown for context);
- ``net`` / ``target``: Pearson r of a network's detail normals, and of the photo's own training target (the
  ceiling control), against the GT's in that band;
- ``shading``: how plainly the photo shows that band as direct shading: r between the photo's band-passed log
  luminance and the band-passed shading the GT detail adds under the key light, ``(n_detail − n_smooth) · l``, on
  the scored pixels the key light reaches (unshadowed, facing it). Albedo marks, noise, blur, JPEG, subsurface
  blur and the other lights lower it. It is context, not a ceiling: a network also reads cavity darkening and the
  shapes wrinkles take, which this linear measure does not;
- ``shifted``: the network's best r over whole-pixel shifts of its field within ±``--max-shift`` px, and the
  shift: relief drawn in the right shape but a few pixels off shows as a large gain here.

    python benchmarks/photo_level_bands.py --data-dir data/heldout_photos [--ckpt FILE.safetensors]
        [--figure OUT.png --figure-photo photo_<seed>_<lighting>]

``--figure`` draws one photo's face: the photo | GT | training target | network, each detail field as its σ = 3 px
high-passed x component (camera frame, grey = 0, one scale for the three).

The held-out photos are the ones ``eval/run.py`` writes (``photo_level.data_dir``); this script only reads them.
"""

from __future__ import annotations

import argparse
import json
import math
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from fds.detail import DetailPredictor
from fds.evaluation import network_map_predictor
from fds.evaluation_image import PhotoDetailRenderer, scored_regions
from fds.evaluation_photo_level import PhotoCase, load_case
from fds.evaluation_photos import faded_detail
from fds.metrics import detail_band, pearson_r

ROOT = Path(__file__).resolve().parents[1]
#: (σ_low, σ_high) photo pixels: band = blur(σ_low) − blur(σ_high); σ_low 0 = no low-pass.
BANDS = ((0.0, 1.0), (1.0, 3.0), (3.0, 8.0))
WIDTH_BINS = ((0, 300), (300, 700), (700, math.inf))  # face width in the photo, px
EDGE_BLUR_TEXELS = 4.0  # detail fade towards unseen texels: eval.yaml's photo_level.edge_blur_texels


def _chw(a: np.ndarray) -> torch.Tensor:
    """``[H, W, C]`` or ``[H, W]`` → float32 ``[1, C, H, W]``."""
    t = torch.as_tensor(np.asarray(a, np.float32))
    return (t[None] if t.dim() == 2 else t.permute(2, 0, 1))[None]


def band(field: np.ndarray, lo: float, hi: float, mask: torch.Tensor) -> torch.Tensor:
    """``field [H, W]`` or ``[H, W, C]`` band-passed over ``mask [1, 1, H, W]`` → ``[1, C, H, W]``."""
    return detail_band(_chw(field), hi, lo, mask)


def rms(x: torch.Tensor, mask: torch.Tensor) -> float:
    """RMS length of ``x [1, C, H, W]`` over ``mask``."""
    return float(torch.sqrt((x**2).sum(1, keepdim=True)[mask > 0].mean()))


def best_shift(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor, max_shift: int) -> tuple[float, int, int]:
    """The largest r of ``a`` rolled by whole pixels (dy, dx ∈ ±max_shift; dy > 0 = down) against ``b``."""
    best = (-math.inf, 0, 0)
    for dy in range(-max_shift, max_shift + 1):
        for dx in range(-max_shift, max_shift + 1):
            r = float(pearson_r(torch.roll(a, (dy, dx), (2, 3)), b, mask))
            best = max(best, (r, dy, dx))
    return best


def benchmark_fields(folder: Path, predictor: DetailPredictor, target: bool = True
                     ) -> tuple[PhotoCase, np.ndarray, dict[str, np.ndarray], np.ndarray]:
    """The benchmark's view of one held-out photo folder: ``(case, scored [H, W] bool, fields, smooth [H, W, 3])``.

    ``fields`` holds detail normals (camera frame, the photo's pixel grid, ``[H, W, 3]``): ``gt`` (GT detailed −
    smooth), ``net`` (the network's, faded towards unseen texels as ``eval/run.py`` does) and, with ``target``, the
    photo's own training target's. ``smooth`` is the GT's smooth normal."""
    case = load_case(folder)
    fm, p, gt = predictor.face_model, case.proxy, case.gt
    fit = p.fit
    renderer = PhotoDetailRenderer(fit.vertices_mm, fm.triangles, fm.uv, fm.uv_triangles, fit.rotation,
                                   fit.scale_px_per_mm, fit.translation_mm, fit.image_size, predictor.map_resolution)
    detailed, smooth = (np.asarray(gt[k], np.float32) for k in ("normal_detail", "normal_smooth"))
    scored, _ = scored_regions(gt["region"], gt.get("landmarks_px"))
    scored &= renderer.covered & np.asarray(gt["face_mask"], bool) & (np.abs(smooth).sum(-1) > 0)
    net = network_map_predictor(predictor)
    fields = {"gt": detailed - smooth,
              "net": renderer.detail_delta(faded_detail(net, p.uv.texture, p.uv.confidence, EDGE_BLUR_TEXELS, fit))}
    if target:
        fields["target"] = renderer.detail_delta(faded_detail(lambda t, f: case.fitted_gt, p.uv.texture,
                                                              p.uv.confidence, EDGE_BLUR_TEXELS, fit))
    return case, scored, fields, smooth


def photo_bands(folder: Path, predictor: DetailPredictor, max_shift: int) -> dict:
    """Every figure of the module doc for one held-out photo folder."""
    case, scored, fields, smooth = benchmark_fields(folder, predictor)
    gt = case.gt
    meta = json.loads((folder / "sample.json").read_text())["photo"]
    key = max(meta["lights"], key=lambda light: sum(light["rgb"]))
    ldir = np.asarray(key["direction"], np.float32)
    lit = scored & (smooth @ ldir > 0.2)
    if "shadow" in gt:
        lit &= np.asarray(gt["shadow"], np.float32) > 0.9
    rgb = np.asarray(Image.open(folder / "photo.png").convert("RGB"), np.float32) / 255.0
    log_lum = np.log(np.clip(rgb.mean(-1), 1.0 / 255.0, 1.0))
    shading = fields["gt"] @ ldir

    m, ml = _chw(scored), _chw(lit)
    hp_gt = detail_band(_chw(fields["gt"]), 3.0, 0.0, m)
    total = rms(hp_gt, m) ** 2
    out = {"photo": folder.name, "width": case.face_width_px, "bands": {}}
    for lo, hi in BANDS:
        b = {k: band(v, lo, hi, m) for k, v in fields.items()}
        out["bands"][f"{lo:g}-{hi:g}"] = {
            "share": rms(b["gt"], m) ** 2 / total,
            "net": float(pearson_r(b["net"], b["gt"], m)),
            "target": float(pearson_r(b["target"], b["gt"], m)),
            "shading": float(pearson_r(band(log_lum, lo, hi, ml), band(shading, lo, hi, ml), ml)) if lit.sum() > 100
            else math.nan}
    hp_net = detail_band(_chw(fields["net"]), 3.0, 0.0, m)
    out["r"] = float(pearson_r(hp_net, hp_gt, m))
    r, dy, dx = best_shift(hp_net, hp_gt, m, max_shift)
    out["shifted"] = {"r": r, "dy": dy, "dx": dx}
    out["panels"] = [rgb] + [detail_band(_chw(fields[k]), 3.0, 0.0, m)[0, 0].numpy() for k in ("gt", "target", "net")]
    out["scored"] = scored
    return out


def figure(row: dict, path: Path, height_px: int = 300) -> None:
    """The face of ``row``'s photo, then its GT / target / network high-passed x components side by side."""
    scored = row["scored"]
    rows, cols = np.flatnonzero(scored.any(1)), np.flatnonzero(scored.any(0))
    box = np.s_[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    photo, *fields = row["panels"]
    scale = float(np.percentile(np.abs(fields[0][scored]), 99)) or 1.0
    grey = [np.repeat(np.clip(128 + 127 * f[box] / scale, 0, 255)[..., None], 3, -1) for f in fields]
    strip = np.concatenate([photo[box] * 255] + grey, 1).astype(np.uint8)
    k = max(1, math.ceil(height_px / strip.shape[0]))
    Image.fromarray(strip).resize((strip.shape[1] * k, strip.shape[0] * k), Image.Resampling.NEAREST).save(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", default=str(ROOT / "data" / "heldout_photos"))
    ap.add_argument("--ckpt", default=str(ROOT / "checkpoints" / "dfdn_lite.safetensors"))
    ap.add_argument("--max-shift", type=int, default=4, help="pixels, each axis")
    ap.add_argument("--photos", nargs="*", help="folder names (default: every photo_* folder)")
    ap.add_argument("--figure", type=Path, help="write the figure of --figure-photo here (PNG)")
    ap.add_argument("--figure-photo", default="photo_950004_upper_left_45")
    a = ap.parse_args()
    predictor = DetailPredictor.from_checkpoint(a.ckpt, fused=False)  # as eval/run.py scores it
    root = Path(a.data_dir)
    folders = [root / n for n in a.photos] if a.photos else sorted(f for f in root.glob("photo_*") if f.is_dir())
    names = [f"{lo:g}-{hi:g}" for lo, hi in BANDS]
    cols = " | ".join(f"{n} px: share / net / target / shading" for n in names)
    print(f"| photo | width px | r | {cols} | shifted r (dy, dx) |")
    print("|---|---:|---:|" + "---|" * len(names) + "---|")
    rows = []
    for folder in folders:
        row = photo_bands(folder, predictor, a.max_shift)
        if a.figure is not None and folder.name == a.figure_photo:
            figure(row, a.figure)
        rows.append({k: v for k, v in row.items() if k not in ("panels", "scored")})
        cells = " | ".join(" / ".join(f"{row['bands'][n][k]:.2f}" for k in ("share", "net", "target", "shading"))
                           for n in names)
        s = row["shifted"]
        print(f"| {row['photo']} | {row['width']:.0f} | {row['r']:.3f} | {cells} | {s['r']:.3f} ({s['dy']}, "
              f"{s['dx']}) |", flush=True)
    print("\nMeans by face width (photos; r; per band share / net / target / shading; shifted r):")
    groups: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        for lo, hi in WIDTH_BINS:
            if row["width"] is not None and lo <= row["width"] < hi:
                groups[f"faces {lo}-{hi} px" if math.isfinite(hi) else f"faces ≥ {lo} px"].append(row)
                break
        groups["all"].append(row)
    for name, sel in groups.items():
        cells = " | ".join(" / ".join(f"{np.nanmean([r['bands'][n][k] for r in sel]):.2f}"
                                      for k in ("share", "net", "target", "shading")) for n in names)
        print(f"| {name} | {len(sel)} | {np.mean([r['r'] for r in sel]):.3f} | {cells} | "
              f"{np.mean([r['shifted']['r'] for r in sel]):.3f} |")


if __name__ == "__main__":
    main()
