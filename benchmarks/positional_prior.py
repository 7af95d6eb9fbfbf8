"""Would a detail network told where it is in the UV chart gain from it? An oracle, no training: the mean of the
band-passed GT detail normals over training heads (fitted UV), used as a predictor of held-out heads.

    python benchmarks/positional_prior.py TRAIN_DIR HELD_OUT_DIR [--ckpt checkpoints/dfdn_lite.safetensors]

Both folders hold photo-level samples (datasets/generate_photo_scans.py). For each held-out sample, inside the
network's zones and on texels the photo sees (and that at least ``--min-heads`` training heads cover), it prints
the Pearson r against the GT of the network's map, of the mean map, and of each with the other; then the pooled r
of both and of their least-squares mix (the most a positional prior added linearly to the network could give).
Detail normals are band-passed as validation does (``fds.metrics.UV_DETAIL_BAND_TEXELS``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from detail_by_condition import band_normals, scored_texels

from fds.data.sample_io import list_samples, read_sample
from fds.data.scans import ScanFolder, sample_texel_mm
from fds.detail.predictor import DetailPredictor


def _r(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a, b)[0, 1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("train_dir", type=Path)
    ap.add_argument("held_out_dir", type=Path)
    ap.add_argument("--ckpt", default="checkpoints/dfdn_lite.safetensors")
    ap.add_argument("--min-heads", type=int, default=20, help="training heads a texel's mean needs")
    args = ap.parse_args(argv)
    net = DetailPredictor.from_checkpoint(args.ckpt)
    zones: dict[int, np.ndarray] = {}

    def valid_of(s) -> torch.Tensor:
        return scored_texels(s, net.face_model, net.meta.regions, zones)

    total = count = None  # Σ band normals [1, 2, R, R] and heads per texel [1, 1, R, R] over the training heads
    for folder in list_samples(args.train_dir):
        s = read_sample(folder)
        v = valid_of(s)
        g = band_normals(s.displacement_mm, sample_texel_mm(s), v) * v
        total, count = (g, v.clone()) if total is None else (total + g, count + v)
    if total is None or count is None:
        raise SystemExit(f"{args.train_dir} holds no samples")
    mean_map = total / count.clamp(min=1)
    folders = list_samples(args.held_out_dir)
    source = ScanFolder(folders=folders)
    pooled: dict[str, list[torch.Tensor]] = {"net": [], "mean": [], "gt": []}
    for i, folder in enumerate(folders):
        s = read_sample(folder)
        v = valid_of(s) * (count >= args.min_heads).float()
        tm = sample_texel_mm(s)
        m = v.bool().expand(-1, 2, -1, -1)
        gt = band_normals(s.displacement_mm, tm, v)[m]
        fit = source.fit(i) if net.needs_fit else None
        pred = band_normals(net.full_map(s.texture, fit).displacement_mm, tm, v)[m]
        mean = mean_map[m]
        for k, x in (("net", pred), ("mean", mean), ("gt", gt)):
            pooled[k].append(x)
        pn, mn, gn = pred.numpy(), mean.numpy(), gt.numpy()
        print(f"{folder.name}: r network {_r(pn, gn):.3f}, mean map {_r(mn, gn):.3f}, network vs mean map "
              f"{_r(pn, mn):.3f}", flush=True)
    p, mm, g = (torch.cat(pooled[k]).numpy().astype(np.float64) for k in ("net", "mean", "gt"))
    a = np.stack([p, mm], 1)
    w = np.linalg.lstsq(a, g, rcond=None)[0]
    print(f"\npooled over {len(folders)} samples: r network {_r(p, g):.4f}, mean map {_r(mm, g):.4f}, "
          f"least-squares mix {_r(a @ w, g):.4f} (weights {w[0]:.3f} network, {w[1]:.3f} mean map)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
