"""Which image channel carries the most of the GT detail's shading? No network: per photo-level sample, in the fitted
UV (``texture`` is the unwrap the network reads, ``displacement_mm`` the GT in the same texels).

Per channel (R, G, B, Rec. 601 luma, and the plain mean of R, G and B) the log brightness and the GT displacement
are band-passed alike (a Gaussian of ``--sigma`` texels minus one of ``--sigma-low``); in each ``--window``-texel
window with at least 90 % valid texels the channel's band is regressed on the band-passed displacement's u and v
gradients (the two coefficients are the window's local light: Lambertian shading of a small relief is linear in its
slope). Texels the sample marks as colour-only lines (brows, strands, stubble, moles) or cast-shadow edges are left
out. R² pooled over windows and samples says how much of each channel's fine brightness the relief explains; the
rest is albedo, noise, JPEG and relief the photo could not resolve.

    python benchmarks/shading_channels.py --data-dir DIR [--max-samples 40]

Prints R² per channel overall, for photos kept without JPEG and with it, and the ratio of each to luma's.
"""

from __future__ import annotations

import argparse

import numpy as np
from scipy.ndimage import gaussian_filter

from fds.data.scans import ScanFolder, list_samples

#: Rec. 601 luma weights (kornia's ``rgb_to_grayscale``, the ``y_*`` channels of fds.data.patches)
LUMA = (0.299, 0.587, 0.114)


def band(x: np.ndarray, valid: np.ndarray, sigma: float, sigma_low: float) -> np.ndarray:
    """Difference of two normalised (valid-texel-only) Gaussian averages of ``x [R, R]`` (σ in texels)."""
    w = valid.astype(np.float64)

    def avg(s: float) -> np.ndarray:
        return gaussian_filter(x * w, s) / np.maximum(gaussian_filter(w, s), 1e-3)

    return avg(sigma) - avg(sigma_low)


def window_r2_terms(y: np.ndarray, gu: np.ndarray, gv: np.ndarray, valid: np.ndarray,
                    window: int) -> tuple[float, float]:
    """(residual, total) sums of squares of ``y`` regressed per window on ``[gu, gv]`` (intercept removed)."""
    res = tot = 0.0
    size = y.shape[0]
    for i in range(0, size - window + 1, window):
        for j in range(0, size - window + 1, window):
            m = valid[i:i + window, j:j + window]
            if m.mean() < 0.9:
                continue
            x = np.stack([gu[i:i + window, j:j + window][m], gv[i:i + window, j:j + window][m]], 1)
            t = y[i:i + window, j:j + window][m]
            t = t - t.mean()
            x = x - x.mean(0)
            coef, *_ = np.linalg.lstsq(x, t, rcond=None)
            res += float(((t - x @ coef) ** 2).sum())
            tot += float((t ** 2).sum())
    return res, tot


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", required=True, help="folder of photo-level sample folders")
    ap.add_argument("--max-samples", type=int, default=40)
    ap.add_argument("--sigma", type=float, default=1.0, help="fine Gaussian of the band (texels)")
    ap.add_argument("--sigma-low", type=float, default=6.0, help="coarse Gaussian of the band (texels)")
    ap.add_argument("--window", type=int, default=64, help="side of the windows with one local light (texels)")
    args = ap.parse_args()

    source = ScanFolder(folders=list_samples(args.data_dir)[: args.max_samples])
    names = ("R", "G", "B", "luma", "mean")
    sums = {group: {c: [0.0, 0.0] for c in names} for group in ("all", "no JPEG", "JPEG")}
    for k in range(len(source)):
        s = source[k]
        rgb = s.texture.astype(np.float64) / 255.0
        valid = s.mask & (s.visibility > 0.5)
        lines = s.flat_lines()
        if lines is not None:
            valid &= lines < 0.2
        d = band(s.displacement_mm.astype(np.float64), valid, args.sigma, args.sigma_low)
        gu, gv = np.gradient(d, axis=1), np.gradient(d, axis=0)  # mm per texel along u (columns) and v (rows)
        channels = [rgb[..., 0], rgb[..., 1], rgb[..., 2], sum(w * rgb[..., c] for c, w in enumerate(LUMA)),
                    rgb.mean(-1)]
        lossless = (s.meta.get("photo", {}).get("camera_effects", {}) or {}).get("jpeg_quality", 0) is None
        row = []
        for name, ch in zip(names, channels, strict=True):
            y = band(np.log(np.clip(ch, 1 / 255, 1)), valid, args.sigma, args.sigma_low)
            res, tot = window_r2_terms(y, gu, gv, valid, args.window)
            for group in ("all", "no JPEG" if lossless else "JPEG"):
                sums[group][name][0] += res
                sums[group][name][1] += tot
            row.append(1 - res / max(tot, 1e-12))
        print(f"{source.folders[k].name}{' (no JPEG)' if lossless else ''}: "
              + "  ".join(f"{n} {r:.3f}" for n, r in zip(names, row, strict=True)), flush=True)

    print(f"\nR² of the band-passed log channel explained by the GT relief's slope (band {args.sigma}–{args.sigma_low} "
          f"texels, {args.window}-texel windows, {len(source)} samples):")
    for group, per in sums.items():
        if per["luma"][1] == 0:
            continue
        r2 = {n: 1 - a / b for n, (a, b) in per.items()}
        print(f"  {group:8s} " + "  ".join(f"{n} {r2[n]:.4f} ({r2[n] / r2['luma']:.2f}× luma)" for n in names))


if __name__ == "__main__":
    main()
