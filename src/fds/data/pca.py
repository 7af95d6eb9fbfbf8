"""PCA basis of GT displacement patches, per region: the artifact ``fds.models.pca.PCABasis`` loads.

As in the paper the basis has no mean patch: it is the top-K right singular vectors of the *uncentred*
matrix of training patches (network units), i.e. the best rank-K subspace for reconstructing patches
without a mean term. Artifact: ``<out_dir>/pca_<region>.npz`` with

- ``basis`` float32 [K,P,P] — orthonormal components (the key ``fds.models.pca.load_basis`` reads);
- ``singular_values`` float32 [K], ``explained_energy`` float32 [K] (cumulative fraction of Σ‖patch‖²);
- ``region``, ``patch_size``, ``disp_scale_mm``, ``num_patches`` (scalars, for provenance).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from fds.data.sample_io import atomic_save_npz


def fit_basis(patches: torch.Tensor, k: int = 64, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Patches ``[N,1,P,P]`` or ``[N,P,P]`` → (basis ``[K,P,P]``, singular values ``[K]``, cumulative energy
    ``[K]``). Uses a randomised SVD (``torch.svd_lowrank``) when K is much smaller than N."""
    x = patches.reshape(patches.shape[0], -1).double()
    n, d = x.shape
    if k > min(n, d):
        raise ValueError(f"k={k} components need at least {k} patches (got {n}) and {k} texels per patch")
    if n <= 4096:  # exact: eigen-decomposition of the N×N Gram matrix
        evals, evecs = torch.linalg.eigh(x @ x.T)
        order = torch.argsort(evals, descending=True)[:k]
        s = evals[order].clamp_min(0).sqrt()
        v = (x.T @ evecs[:, order]) / s.clamp_min(1e-12)
    else:
        torch.manual_seed(seed)
        _, s, v = torch.svd_lowrank(x, q=min(k + 16, n, d), niter=4)
        s, v = s[:k], v[:, :k]
    total = x.pow(2).sum().clamp_min(1e-30)
    energy = (s**2).cumsum(0) / total
    side = int(round(d**0.5))
    return v.T.reshape(k, side, side).float(), s.float(), energy.float()


def collect_patches(dataset, num: int, batch_size: int = 64, num_workers: int = 0) -> torch.Tensor:
    """Stack the ``displacement`` of the first ``num`` items of a geometry patch dataset → ``[N,1,P,P]``."""
    out, have = [], 0
    for batch in DataLoader(dataset, batch_size=batch_size, num_workers=num_workers):
        out.append(batch["displacement"])
        have += len(batch["displacement"])
        if have >= num:
            break
    return torch.cat(out)[:num]


def build_pca(dataset_for_region, regions, out_dir: str | os.PathLike, k: int = 64, num_patches: int = 1024,
              num_workers: int = 0, disp_scale_mm: float | None = None) -> dict[str, Path]:
    """For each region, collect ``num_patches`` GT patches from ``dataset_for_region(region)`` (a geometry
    patch dataset) and write ``pca_<region>.npz``. Returns region → artifact path."""
    out_dir = Path(out_dir)
    paths = {}
    for region in regions:
        ds = dataset_for_region(region)
        patches = collect_patches(ds, num_patches, num_workers=num_workers)
        basis, s, energy = fit_basis(patches, k)
        path = out_dir / f"pca_{region}.npz"
        atomic_save_npz(path, basis=basis.numpy(), singular_values=s.numpy(), explained_energy=energy.numpy(),
                        region=np.array(region), patch_size=np.array(basis.shape[-1]),
                        disp_scale_mm=np.array(np.nan if disp_scale_mm is None else disp_scale_mm),
                        num_patches=np.array(len(patches)))
        paths[region] = path
    return paths
