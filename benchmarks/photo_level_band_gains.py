"""Would re-weighting the network's spatial bands raise the photo-level r? An oracle for a per-band output filter.

For each held-out photo the benchmark's detail-normal fields (``photo_level_bands.py``: camera frame, the photo's
pixel grid, the scored mask) are cut into telescoping bands of the network's field (differences of Gaussians, σ in
photo pixels, plus the coarsest blur), each high-passed at σ = 3 px as the benchmark scores it. A prediction
``Σ_b w_b · band_b`` is the network's map through a linear filter of the bands (w = 1: the network itself). Gains
``w`` are fitted by least squares (each photo weighted by its GT's energy, as the benchmark averages photos) and
the benchmark's r is reported:

- ``baseline``: w = 1 (the benchmark's own r, a check);
- ``self-fit``: w fitted on the photos it is scored on: an upper bound for any such filter;
- ``--fit-dir``: w fitted on other photos (e.g. training renders), scored on ``--data-dir``.

    python benchmarks/photo_level_band_gains.py --data-dir data/heldout_photos [--fit-dir data/photo_scans
        --fit-max 60] [--ckpt FILE.safetensors]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from photo_level_bands import benchmark_fields

from fds.detail import DetailPredictor
from fds.metrics import masked_blur

ROOT = Path(__file__).resolve().parents[1]
SIGMAS = (0.0, 0.7, 1.4, 2.1, 3.0, 4.5, 6.0, 9.0)  # photo px: band k = blur(σ_k) − blur(σ_k+1), last = blur(9)
HIGHPASS_PX = 3.0  # the benchmark's high-pass (eval.yaml photo_level)


def regressors(folder: Path, predictor: DetailPredictor) -> tuple[np.ndarray, np.ndarray] | None:
    """``(X [N, bands], y [N])``: the high-passed bands of the network's detail normals and the GT's, over the
    scored pixels × 3 channels of one photo; None when the photo has no scored pixel."""
    _, scored, fields, _ = benchmark_fields(folder, predictor, target=False)
    if not scored.any():
        return None
    net, gt = fields["net"], fields["gt"]
    m = torch.as_tensor(scored)[None, None].float()

    def chw(a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(a, np.float32)).permute(2, 0, 1)[None]

    def highpass(f: torch.Tensor) -> torch.Tensor:
        return masked_blur(f, 0.0, m) - masked_blur(f, HIGHPASS_PX, m)

    levels = [masked_blur(chw(net), s, m) for s in SIGMAS]  # each [1, 3, H, W]
    bands = [levels[i] - levels[i + 1] for i in range(len(levels) - 1)] + [levels[-1]]
    keep = (m > 0).expand(1, 3, *scored.shape)
    x = torch.stack([highpass(b)[keep] for b in bands], 1).double().numpy()
    return x, highpass(chw(gt))[keep].double().numpy()


def fit_gains(rows: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Least-squares band gains over photos, each normalised by its GT's energy."""
    a = sum(x.T @ x / (y @ y) for x, y in rows)
    b = sum(x.T @ y / (y @ y) for x, y in rows)
    return np.linalg.solve(a, b)


def mean_r(rows: list[tuple[np.ndarray, np.ndarray]], w: np.ndarray) -> tuple[float, float]:
    """Mean over photos of the Pearson r and of the RMS amplitude ratio of ``X @ w`` against y."""
    rs, amps = [], []
    for x, y in rows:
        p = x @ w
        pc, yc = p - p.mean(), y - y.mean()
        rs.append(float(pc @ yc / np.sqrt((pc @ pc) * (yc @ yc))))
        amps.append(float(np.sqrt((p @ p) / (y @ y))))
    return float(np.mean(rs)), float(np.mean(amps))


def collect(folder_root: Path, predictor: DetailPredictor, limit: int | None) -> list:
    folders = sorted(f for f in folder_root.glob("photo_*") if f.is_dir())[:limit]
    return [row for f in folders if (row := regressors(f, predictor)) is not None]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", default=str(ROOT / "data" / "heldout_photos"))
    ap.add_argument("--fit-dir", help="photo-level sample folders to fit the gains on (default: self-fit only)")
    ap.add_argument("--fit-max", type=int, default=60, help="at most this many photos of --fit-dir")
    ap.add_argument("--ckpt", default=str(ROOT / "checkpoints" / "dfdn_lite.safetensors"))
    a = ap.parse_args()
    predictor = DetailPredictor.from_checkpoint(a.ckpt, fused=False)  # as eval/run.py scores it
    held = collect(Path(a.data_dir), predictor, None)
    ones = np.ones(len(SIGMAS))
    print(f"bands (σ photo px): {SIGMAS} and the rest; {len(held)} photos in {a.data_dir}")
    r, amp = mean_r(held, ones)
    print(f"baseline (w = 1): r {r:.3f}, amplitude {amp:.3f}")
    w = fit_gains(held)
    r, amp = mean_r(held, w)
    print(f"self-fit w = {np.round(w, 2)}: r {r:.3f}, amplitude {amp:.3f}")
    if a.fit_dir:
        train = collect(Path(a.fit_dir), predictor, a.fit_max)
        w = fit_gains(train)
        print(f"fitted on {len(train)} photos of {a.fit_dir}: w = {np.round(w, 2)}")
        print(f"  on them: r {mean_r(train, w)[0]:.3f} (w = 1: {mean_r(train, ones)[0]:.3f})")
        r, amp = mean_r(held, w)
        print(f"  on the held-out photos: r {r:.3f}, amplitude {amp:.3f}")


if __name__ == "__main__":
    main()
