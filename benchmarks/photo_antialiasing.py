"""What one sample per pixel did to small faces: photo renders with point-sampled against mip-mapped UV maps.

Each seed's head is rendered at ``--widths`` px face widths twice, once per ``PhotoConfig.texture_filter``, and
once ``--k``× finer with the mip filter; the finer photo averaged over each small pixel's k × k block is what a
camera's small pixel integrates. For each render the GT detail normals (camera frame, x and y), high-passed like
the photo-level benchmark (σ = 3 px), are compared with that reference:

- ``r``: Pearson correlation with the averaged finer photo (1 = the pixel shows what the camera would);
- ``rms``: RMS ratio to it (> 1: variance the camera would not record, i.e. aliased pores and grooves);
- ``px share``: the share of the high-passed variance a 1 px Gaussian blur removes (pixel-scale speckle).

The last column is the mip filter over point sampling (ratios in the same run).

    python benchmarks/photo_antialiasing.py [--seeds 3 8] [--widths 150 250] [--figure docs/img/photo_antialiasing.png]
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np
from machine import describe
from scipy.ndimage import binary_erosion, gaussian_filter

from fds.data.photo_scans import PhotoScanGenerator
from fds.threads import torch_threads

SIGMA_PX = 3.0  # the photo-level benchmark's high-pass


def render(gen: PhotoScanGenerator, seed: int, width_px: float, texture_filter: str):
    gen.photo_config = dataclasses.replace(gen.photo_config, face_width_px=(width_px, width_px),
                                           texture_filter=texture_filter)
    photo, _ = gen.render(seed)
    return photo


def highpass(n: np.ndarray, sigma: float) -> np.ndarray:
    """x and y components of ``n [H, W, 3]`` minus their Gaussian blur: ``[H, W, 2]``."""
    return np.stack([n[..., c] - gaussian_filter(n[..., c], sigma) for c in range(2)], -1)


def compare(small, fine, k: int) -> tuple[dict, np.ndarray]:
    """Scores of ``small`` (a RenderedPhoto) against ``fine`` averaged over k × k blocks, and the scored mask."""
    h, w = (min(a, b // k) for a, b in zip(small.normal_detail.shape[:2], fine.normal_detail.shape[:2], strict=True))
    seen = fine.normal_detail[:k * h, :k * w].reshape(h, k, w, k, 3).mean((1, 3))
    ok = binary_erosion(small.face_mask[:h, :w], iterations=3) & \
        fine.face_mask[:k * h, :k * w].reshape(h, k, w, k).all((1, 3))
    want = highpass(seen, SIGMA_PX)[ok].ravel()
    got_full = highpass(small.normal_detail[:h, :w], SIGMA_PX)
    got = got_full[ok].ravel()
    blurred = np.stack([gaussian_filter(got_full[..., c], 1.0) for c in range(2)], -1)[ok].ravel()
    return {"r": float(np.corrcoef(got, want)[0, 1]), "rms": float(got.std() / want.std()),
            "px share": float(1 - blurred.var() / got.var())}, ok


def figure(path: Path, small: dict, ok: np.ndarray) -> None:
    """Photo | GT detail normal x, point-sampled | the same, mip-mapped (one small face, 3× nearest upscale)."""
    from PIL import Image

    ys, xs = np.nonzero(ok)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    d = {f: (p.normal_detail - p.normal_smooth)[y0:y1, x0:x1, 0] for f, p in small.items()}
    s = 3 * d["point"][ok[y0:y1, x0:x1]].std()
    grey = [np.clip(128 + 127 * d[f] / s, 0, 255).astype(np.uint8) for f in ("point", "mipmap")]
    photo = small["mipmap"].image[y0:y1, x0:x1]
    row = np.concatenate([photo] + [np.repeat(g[..., None], 3, -1) for g in grey], 1)
    Image.fromarray(row).resize((row.shape[1] * 3, row.shape[0] * 3), Image.Resampling.NEAREST).save(path)
    print(f"figure: {path}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs=2, default=[3, 8], metavar=("START", "STOP"))
    ap.add_argument("--widths", type=float, nargs="+", default=[150.0, 250.0], help="face widths (px)")
    ap.add_argument("--k", type=int, default=4, help="the reference photo is k× finer")
    ap.add_argument("--resolution", type=int, default=1024, help="the head maps' side (texels)")
    ap.add_argument("--figure", type=Path, default=None, help="write the first small face's comparison here")
    args = ap.parse_args()
    print(describe())
    gen = PhotoScanGenerator("sfm", args.resolution, args.resolution, photo={"yaw_deg": 20.0, "pitch_deg": 10.0,
                                                                              "roll_deg": 5.0})
    rows: list[dict] = []
    print(f"{'seed':>5} {'width':>6} | {'point r / rms / px share':>26} | {'mipmap r / rms / px share':>26} | "
          "mip/point r")
    with torch_threads(1):
        for seed in range(*args.seeds):
            for width in args.widths:
                fine = render(gen, seed, width * args.k, "mipmap")
                small = {f: render(gen, seed, width, f) for f in ("point", "mipmap")}
                scores = {}
                for f, p in small.items():
                    scores[f], ok = compare(p, fine, args.k)
                if args.figure is not None and not rows:
                    figure(args.figure, small, ok)
                rows.append({"width": width, **{f"{f} {m}": v for f, s in scores.items() for m, v in s.items()}})
                cells = [" / ".join(f"{scores[f][m]:.2f}" for m in ("r", "rms", "px share")) for f in small]
                print(f"{seed:>5} {width:>6.0f} | {cells[0]:>26} | {cells[1]:>26} | "
                      f"{scores['mipmap']['r'] / scores['point']['r']:.2f}×")
    for width in args.widths:
        sel = [r for r in rows if r["width"] == width]
        if sel:
            mean = {k: float(np.mean([r[k] for r in sel])) for k in sel[0] if k != "width"}
            cells = ", ".join(f"{k} {v:.2f}" for k, v in mean.items())
            print(f"mean over {len(sel)} heads at {width:.0f} px: {cells}")


if __name__ == "__main__":
    main()
