"""Build the per-region PCA basis of GT displacement patches (artifact ``pca_<region>.npz``).

    python datasets/build_pca.py --scans data/scans --out data/pca --regions forehead mouth --k 64

Load it in the model with ``model.generator.bases={forehead: data/pca/pca_forehead.npz, mouth: ...}``
(``fds.models.pca.PCABasis`` reads the ``basis`` array, [K, P, P], network units).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from fds.data.pca import build_pca
from fds.data.scans import GeometryPatches, ScanFolder


def main(argv: list[str] | None = None) -> int:
    root = Path(__file__).resolve().parents[1]
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scans", type=Path, default=root / "data" / "scans", help="folder of sample folders")
    ap.add_argument("--out", type=Path, default=root / "data" / "pca")
    ap.add_argument("--regions", nargs="+", default=["forehead", "mouth"])
    ap.add_argument("--k", type=int, default=64, help="components per region")
    ap.add_argument("--num-patches", type=int, default=1024, help="training patches per region")
    ap.add_argument("--patch-size", type=int, default=256)
    ap.add_argument("--disp-scale-mm", type=float, default=2.0, help="mm per network unit (as in training)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=0)
    args = ap.parse_args(argv)
    source = ScanFolder(args.scans)
    if len(source) == 0:
        raise SystemExit(f"no scan samples under {args.scans}: run datasets/generate_scans.py first")
    torch.manual_seed(args.seed)

    def dataset(region: str) -> GeometryPatches:
        return GeometryPatches(source, [region], args.patch_size, args.num_patches,
                               disp_scale_mm=args.disp_scale_mm, hflip=True)

    paths = build_pca(dataset, args.regions, args.out, args.k, args.num_patches, args.workers, args.disp_scale_mm)
    for region, path in paths.items():
        import numpy as np

        with np.load(path) as z:
            print(f"{region}: {path}  K={z['basis'].shape[0]}  energy captured {float(z['explained_energy'][-1]):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
