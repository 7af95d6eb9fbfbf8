"""A region's PCA basis of displacement patches and the reconstruction coarse = Σ_k w_k B_k.

The basis is a buffer ``[K, H, W]`` in network displacement units (the same units as the GT patches the
basis was built from). As in the paper, **no mean patch is added**: the basis assumes zero-mean patches.

Sources, in order of preference:

- an artifact file written by the data stage: ``.npz`` with key ``basis`` ``[K', H, W]`` (K' >= K; other
  keys are ignored), ``.npy`` holding that array, ``.pt``/``.pth`` holding a tensor or a dict with ``basis``,
  or the release's ``project.mat`` (key ``p``, ``[H*W, K']``, column k reshaped row-major to ``[H, W]``);
- a tensor ``[K', H, W]`` or ``[H*W, K']``;
- ``None``: the K lowest-frequency orthonormal 2-D DCT-II patches (a data-free stand-in until a PCA artifact
  exists). This one is recomputed from (K, H, W), so it is not stored in checkpoints; a loaded basis is.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch import nn


def dct_basis(k: int, height: int, width: int) -> torch.Tensor:
    """K orthonormal 2-D DCT-II patches ``[K, H, W]``, ordered by frequency (u+v, then u)."""
    if k > height * width:
        raise ValueError(f"k={k} exceeds the number of texels {height}x{width}")

    def dct_1d(n: int) -> torch.Tensor:  # [n, n]: row f is frequency f
        i = torch.arange(n, dtype=torch.float64)
        f = torch.arange(n, dtype=torch.float64)[:, None]
        m = torch.cos(math.pi * (i + 0.5) * f / n) * math.sqrt(2.0 / n)
        m[0] /= math.sqrt(2.0)
        return m

    freqs = sorted(
        ((u, v) for u in range(height) for v in range(width) if u + v < 2 * math.isqrt(k) + 2),
        key=lambda uv: (uv[0] + uv[1], uv[0]),
    )[:k]
    ry, rx = dct_1d(height), dct_1d(width)
    return torch.stack([torch.outer(ry[u], rx[v]) for u, v in freqs]).float()


def _basis_from_array(
    arr: np.ndarray | torch.Tensor, k: int, size: tuple[int, int] | None, source: str
) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(arr) if not isinstance(arr, torch.Tensor) else arr).float()
    if t.ndim == 2:  # [H*W, K'] as in project.mat
        side = math.isqrt(t.shape[0])
        h, w = size if size is not None else (side, side)
        if t.shape[0] != h * w:
            raise ValueError(f"PCA basis from {source}: 2-D array {tuple(t.shape)} must be [H*W, K] with H*W={h * w}")
        t = t.T.reshape(-1, h, w)
    if t.ndim != 3:
        raise ValueError(f"PCA basis from {source} must be [K, H, W] or [H*W, K], got shape {tuple(t.shape)}")
    if t.shape[0] < k:
        raise ValueError(f"PCA basis from {source} has {t.shape[0]} components, the model needs k={k}")
    if size is not None and tuple(t.shape[1:]) != tuple(size):
        raise ValueError(f"PCA basis from {source} is {tuple(t.shape[1:])}, the model's patch size is {tuple(size)}")
    return t[:k].contiguous()


def load_basis(path: str | Path, k: int, size: tuple[int, int] | None = None) -> torch.Tensor:
    """Read a basis artifact (see module doc) → float32 ``[K, H, W]``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"PCA basis file not found: {path} (build it with the data stage's PCA builder)")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        with np.load(path) as z:
            if "basis" not in z:
                raise KeyError(f"{path}: no 'basis' array (keys: {list(z.keys())})")
            arr = z["basis"]
    elif suffix == ".npy":
        arr = np.load(path)
    elif suffix in (".pt", ".pth"):
        obj = torch.load(path, map_location="cpu", weights_only=True)
        arr = obj["basis"] if isinstance(obj, dict) else obj
    elif suffix == ".mat":
        from scipy.io import loadmat

        arr = loadmat(path)["p"]
    else:
        raise ValueError(f"{path}: unsupported PCA basis format {suffix!r} (use .npz, .npy, .pt or .mat)")
    return _basis_from_array(arr, k, size, str(path))


class PCABasis(nn.Module):
    """``forward(weights [B, K]) -> coarse [B, 1, H, W]`` with ``coarse = Σ_k w_k · basis[k]``.

    ``unit_rms=True`` rescales each component to an RMS of 1 per texel (orthonormal components have RMS
    1/sqrt(H*W)), so the head's weights live on the scale of the displacement itself instead of ~256x larger;
    it changes only the parametrisation. Keep it False to load the release's weights with its ``project.mat``.
    """

    basis: torch.Tensor  # buffer [K, H, W]

    def __init__(
        self,
        source: str | Path | torch.Tensor | np.ndarray | None = None,
        k: int = 64,
        patch_size: int | tuple[int, int] = 256,
        unit_rms: bool = False,
    ) -> None:
        super().__init__()
        size: tuple[int, int] = (patch_size, patch_size) if isinstance(patch_size, int) else (patch_size[0],
                                                                                               patch_size[1])
        # the basis is a persistent buffer: checkpoints carry it and never depend on the artifact file
        if source is None:
            self.register_buffer("basis", dct_basis(k, *size))
            self.source = "dct"
        else:
            if isinstance(source, str | Path):
                tensor, self.source = load_basis(source, k, size), str(source)
            else:
                tensor, self.source = _basis_from_array(source, k, size, "tensor"), "tensor"
            self.register_buffer("basis", tensor)
        if unit_rms:  # rescale each component to RMS 1 per texel; orthogonality is kept
            rms = self.basis.flatten(1).pow(2).mean(1).sqrt().clamp_min(1e-12)
            self.basis.div_(rms[:, None, None])
        self.k, self.unit_rms = k, unit_rms

    @property
    def patch_size(self) -> tuple[int, int]:
        return int(self.basis.shape[1]), int(self.basis.shape[2])

    def forward(self, weights: torch.Tensor) -> torch.Tensor:
        if weights.ndim != 2 or weights.shape[1] != self.k:
            raise ValueError(f"PCA weights must be [B, {self.k}], got {tuple(weights.shape)}")
        return torch.einsum("bk,khw->bhw", weights, self.basis.to(weights.dtype)).unsqueeze(1)
