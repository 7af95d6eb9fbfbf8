"""How far can a detail predictor get on the photo-level benchmark? Two ceilings, per held-out photo.

- ``target``: the photo's own training target (the GT displacement in the fitted proxy's UV, ``maps.npz``),
  scored like a method's map (``fds.evaluation_photo_level.score_case``'s ``fitted_gt`` control): what the fitted
  proxy, the ray-cast GT and the rendering of a UV map lose. A network trained to that target cannot beat it.
- ``wrinkles only``: the same head re-rendered with its pore-scale relief scaled to 0 (same draws, same photo
  geometry; ``micro_relief_scale=0``), its detail normals in the photo scored against the full GT's: a predictor
  that got every wrinkle exactly and no pore would score this. The gap to 1 is the share of the high-passed GT
  that is pores and skin texture.

The figures are the benchmark's own (r, RMS amplitude ratio; normal error beside no detail's, printed in the same
row), per photo and as means over the photos, overall and per region. The held-out photos are the ones
``eval/run.py`` writes (``photo_level.data_dir``; written here when missing).

    python benchmarks/photo_level_ceilings.py [--data-dir data/heldout_photos] [--heads 3]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from fds.data.photo_scans import PhotoScanGenerator
from fds.evaluation_image import score_detail_normals, scored_regions
from fds.evaluation_photo_level import LIGHTINGS, load_case, score_case, write_held_out_photos
from fds.facemodel import load_face_model

ROOT = Path(__file__).resolve().parents[1]


def wrinkles_only_scores(generator: PhotoScanGenerator, case, seed: int) -> dict:
    """The pore-free re-render of ``case``'s head, scored against the full GT in its photo."""
    photo, _ = generator.render(seed, LIGHTINGS[case.lighting])
    gt = case.gt
    full_detail, full_smooth = (np.asarray(gt[k], np.float32) for k in ("normal_detail", "normal_smooth"))
    scored, regions = scored_regions(gt["region"], gt.get("landmarks_px"))
    scored &= np.asarray(gt["face_mask"], bool) & photo.face_mask & (np.abs(full_smooth).sum(-1) > 0)
    return score_detail_normals(photo.normal_detail - photo.normal_smooth, full_detail, full_smooth, scored, regions)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", default=str(ROOT / "data" / "heldout_photos"))
    ap.add_argument("--start-seed", type=int, default=950000)
    ap.add_argument("--heads", type=int, default=3)
    ap.add_argument("--cache-dir", default=str(ROOT / "data" / "cache"))
    a = ap.parse_args()
    fm = load_face_model("sfm")
    gen = PhotoScanGenerator("sfm", 1024, 1024, cache_dir=a.cache_dir)
    pore_free = PhotoScanGenerator("sfm", 1024, 1024, cache_dir=a.cache_dir, micro_relief_scale=0.0)
    folders, skipped = write_held_out_photos(a.data_dir, gen, range(a.start_seed, a.start_seed + a.heads))
    rows = []
    print("| photo | target r | target amp. | target ° | wrinkles-only r | wrinkles-only amp. | no detail ° |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for folder in folders:
        case = load_case(folder)
        target = score_case(case, {}, fm, 1024)["scores"]["fitted_gt"]
        wr = wrinkles_only_scores(pore_free, case, int(case.seed))
        rows.append((target, wr))
        t, w = target["all"], wr["all"]
        print(f"| {case.name} | {t['detail_r']:.3f} | {t['amplitude_ratio']:.3f} | {t['normal_deg']:.3f} | "
              f"{w['detail_r']:.3f} | {w['amplitude_ratio']:.3f} | {t['normal_deg_zero']:.3f} |", flush=True)
    for name, k in (("target", 0), ("wrinkles only", 1)):
        overall = {m: float(np.mean([r[k]["all"][m] for r in rows])) for m in ("detail_r", "amplitude_ratio")}
        regions = sorted({g for r in rows for g in r[k]} - {"all"})
        per = {g: float(np.mean([r[k][g]["detail_r"] for r in rows if g in r[k]])) for g in regions}
        print(f"{name}: r {overall['detail_r']:.3f}, amplitude {overall['amplitude_ratio']:.3f}; r per region "
              + ", ".join(f"{g} {v:.3f}" for g, v in per.items()))
    for s in skipped:
        print(f"skipped {s}")


if __name__ == "__main__":
    main()
