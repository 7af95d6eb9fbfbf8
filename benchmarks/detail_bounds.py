"""How low can the normal-angle error go on the procedural scans? Oracle predictors built from the GT itself.

A photo's unwrap is misregistered by up to 3 texels (at 1024²), down-sampled up to 4× and JPEG-compressed
(``fds.data.degrade``), so pore-scale relief (radius 0.04–0.1 mm, under one texel) cannot be recovered from it
and a predicted groove lands where the texture shows it, not where the GT has it. The oracles bound what any
detail network can reach on ``python eval/run.py``'s metric:

- ``zero``: no detail (the line every method is compared with);
- ``gt_blur_S``: the GT blurred by σ = S texels (perfect registration, pore scale removed);
- ``gt_misreg_blur_S``: the GT moved by a random misregistration warp of the degradation's size, then blurred
  (the best a predictor can do that sees wrinkles where the degraded texture shows them).

Prints the normal-angle error (degrees) over all face texels and on wrinkle texels, and each as a ratio of
``zero``'s, for the first N held-out scans:

    python benchmarks/detail_bounds.py [--scans data/heldout_scans] [--max-samples 4]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import kornia
import numpy as np
import torch
import torch.nn.functional as F

from fds.data.degrade import misregistration_warp
from fds.data.scans import ScanFolder
from fds.evaluation import score_maps
from fds.facemodel import load_face_model


def blurred(gt_mm: np.ndarray, sigma_texels: float) -> np.ndarray:
    """``gt_mm [R,R]`` blurred by a Gaussian of ``sigma_texels`` (reflected borders)."""
    g = torch.from_numpy(np.asarray(gt_mm, np.float32))[None, None]
    k = int(2 * round(3 * sigma_texels) + 1)
    return kornia.filters.gaussian_blur2d(g, (k, k), (sigma_texels, sigma_texels), border_type="reflect")[0, 0].numpy()


def misregistered(gt_mm: np.ndarray, rng: np.random.Generator, max_shift_texels_1024: float = 3.0) -> np.ndarray:
    """``gt_mm [R,R]`` warped as ``fds.data.degrade`` warps the texture (shift ≤ 3 texels per 1024)."""
    r = gt_mm.shape[0]
    grid = misregistration_warp(rng, r, max_shift_px=max_shift_texels_1024 * r / 1024)
    g = torch.from_numpy(np.asarray(gt_mm, np.float32))[None, None]
    return F.grid_sample(g, grid, mode="bilinear", padding_mode="border", align_corners=False)[0, 0].numpy()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scans", type=Path, default=Path("data/heldout_scans"),
                    help="folder of scan samples (python eval/run.py generates the held-out ones there)")
    ap.add_argument("--max-samples", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0, help="seed of the misregistration warps")
    args = ap.parse_args()
    folder = ScanFolder(root=args.scans)
    if len(folder) == 0:
        raise SystemExit(f"--scans {args.scans} holds no scan samples: run `python eval/run.py` once (it generates "
                         "the held-out scans) or point --scans at a folder of samples")
    samples = [folder[i] for i in range(min(len(folder), args.max_samples))]
    fm = load_face_model(str(samples[0].meta.get("face_model", "sfm")))
    gt = {id(s.texture): s.displacement_mm for s in samples}  # the predictors see the texture; the oracle looks up

    def oracle(fn):
        return lambda texture, fit: fn(gt[id(texture)])

    rng = np.random.default_rng(args.seed)
    methods = {
        "zero": lambda texture, fit: np.zeros(texture.shape[:2], np.float32),
        "gt_blur_1": oracle(lambda g: blurred(g, 1.0)),
        "gt_blur_2": oracle(lambda g: blurred(g, 2.0)),
        "gt_blur_4": oracle(lambda g: blurred(g, 4.0)),
        "gt_misreg_blur_2": oracle(lambda g: blurred(misregistered(g, rng), 2.0)),
        "gt_misreg_blur_3": oracle(lambda g: blurred(misregistered(g, rng), 3.0)),
    }
    print(f"{len(samples)} scans from {args.scans} at {samples[0].resolution}²; normal-angle error in degrees "
          "(ratio of zero detail's)")
    print(f"{'method':<20} {'all':>7} {'ratio':>6} {'wrinkles':>9} {'ratio':>6} {'MAE mm':>8}")
    base = None
    for name, fn in methods.items():
        m = score_maps(fn, samples, fm).metrics
        row = (m["all"]["normal_deg"], m["wrinkles"]["normal_deg"], m["all"]["disp_mae_mm"])
        base = base or row
        print(f"{name:<20} {row[0]:7.3f} {row[0] / base[0]:6.3f} {row[1]:9.3f} {row[1] / base[1]:6.3f} {row[2]:8.4f}")


if __name__ == "__main__":
    main()
