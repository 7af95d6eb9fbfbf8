"""PCA basis builder: recovers a known subspace and writes what fds.models.pca loads."""

import numpy as np
import torch

from fds.data.pca import build_pca, fit_basis


def _low_rank_patches(n=200, rank=5, p=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(p * p, rank, generator=g, dtype=torch.float64))
    w = torch.randn(n, rank, generator=g, dtype=torch.float64) * torch.linspace(3, 1, rank, dtype=torch.float64)
    return (w @ q.T).float().reshape(n, 1, p, p), q


def test_fit_basis_recovers_subspace():
    patches, q = _low_rank_patches()
    basis, s, energy = fit_basis(patches, k=5)
    b = basis.reshape(5, -1).double()
    assert torch.allclose(b @ b.T, torch.eye(5, dtype=torch.float64), atol=1e-4)
    proj = q.T @ b.T  # [rank, K]: the basis spans q
    assert torch.allclose(torch.linalg.svdvals(proj), torch.ones(5, dtype=torch.float64), atol=1e-4)
    assert energy[-1] > 0.9999 and (s[:-1] >= s[1:]).all()


def test_artifact_loads_in_models(tmp_path):
    from fds.models.pca import PCABasis

    patches, _ = _low_rank_patches(n=80, rank=8)
    ds = [{"displacement": patches[i]} for i in range(len(patches))]
    paths = build_pca(lambda region: ds, ["forehead", "mouth"], tmp_path, k=8, num_patches=80)
    assert set(paths) == {"forehead", "mouth"}
    with np.load(paths["forehead"]) as z:
        assert z["basis"].shape == (8, 16, 16) and str(z["region"]) == "forehead"
    module = PCABasis(paths["mouth"], k=8, patch_size=16)
    coarse = module(torch.ones(2, 8))
    assert coarse.shape == (2, 1, 16, 16)
