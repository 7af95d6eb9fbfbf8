"""Patches of UV maps: the paper's input preprocessing, random patch placement and full-map grids.

Coordinates are texel (row, col) of a patch's top-left corner in a UV map of size R (row 0 = top of the
chart). Zones (``forehead``, ``mouth``, ``face`` or an anatomical region) come from
:meth:`fds.data.uvchart.UVChart.zone_mask`.

Preprocessing (paper §2, "Input"): the HSV value channel V = max(R, G, B) of the texture in [0, 1], minus its
mean over the patch, times 2 (:func:`preprocess`). ``channels="rgb"`` keeps three channels, each treated the
same way. Displacements enter the network as ``clip(mm / disp_scale_mm, −1, 1)`` (:func:`to_network_units`).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from kornia.color import rgb_to_hsv

Channels = Literal["v", "rgb"]


def preprocess(rgb: torch.Tensor, channels: Channels = "v") -> torch.Tensor:
    """Texture patches ``[B,3,H,W]`` in [0, 1] → network input ``[B,Cin,H,W]`` (Cin = 1 for "v", 3 for "rgb")."""
    if rgb.dim() != 4 or rgb.shape[1] != 3:
        raise ValueError(f"rgb must be [B, 3, H, W] in [0, 1], got {tuple(rgb.shape)}")
    if channels == "v":
        x = rgb_to_hsv(rgb)[:, 2:3]
    elif channels == "rgb":
        x = rgb
    else:
        raise ValueError(f"channels must be 'v' (paper) or 'rgb', got {channels!r}")
    return (x - x.mean(dim=(2, 3), keepdim=True)) * 2.0


def in_channels(channels: Channels) -> int:
    """Network input channels for a preprocessing mode."""
    return 1 if channels == "v" else 3


def to_network_units(displacement_mm: torch.Tensor | np.ndarray, disp_scale_mm: float) -> torch.Tensor:
    """Displacement in mm → network units ``clip(mm / disp_scale_mm, −1, 1)`` (float32)."""
    if disp_scale_mm <= 0:
        raise ValueError(f"disp_scale_mm must be positive (mm per network unit), got {disp_scale_mm}")
    d = torch.as_tensor(displacement_mm, dtype=torch.float32)
    return (d / disp_scale_mm).clamp(-1.0, 1.0)


def _window_sum(mask: np.ndarray, patch: int) -> np.ndarray:
    """Sum of ``mask`` over every patch×patch window, indexed by top-left: ``[R−P+1, R−P+1]``."""
    s = np.pad(np.cumsum(np.cumsum(mask.astype(np.float64), 0), 1), ((1, 0), (1, 0)))
    return s[patch:, patch:] - s[:-patch, patch:] - s[patch:, :-patch] + s[:-patch, :-patch]


def candidate_origins(zone: np.ndarray, valid: np.ndarray, patch: int, min_valid: float = 0.5,
                      stride: int = 4) -> np.ndarray:
    """Top-left corners ``int64 [N,2]`` (on a ``stride`` lattice) whose patch centre lies in ``zone`` and whose
    patch holds at least ``min_valid`` valid texels. Random patches are drawn from these (+ jitter < stride)."""
    r = zone.shape[0]
    if patch > r:
        raise ValueError(f"patch size {patch} exceeds the map size {r}")
    frac = _window_sum(valid, patch) / patch**2
    tops = np.arange(0, r - patch + 1, stride)
    tt, ll = np.meshgrid(tops, tops, indexing="ij")
    ok = zone[tt + patch // 2, ll + patch // 2] & (frac[tt, ll] >= min_valid)
    out = np.stack([tt[ok], ll[ok]], -1).astype(np.int64)
    if len(out) == 0:
        raise ValueError(f"no {patch}² patch centred in this zone has ≥ {min_valid:.0%} valid texels; "
                         "lower min_valid or the patch size, or raise the map resolution")
    return out


def random_origin(rng: np.random.Generator, candidates: np.ndarray, r: int, patch: int, stride: int = 4
                  ) -> tuple[int, int]:
    """A random top-left corner: a candidate plus a jitter of less than ``stride`` texels, kept in the map."""
    top, left = candidates[int(rng.integers(len(candidates)))] + rng.integers(0, stride, 2)
    return int(min(top, r - patch)), int(min(left, r - patch))


def patch_grid(zone: np.ndarray, patch: int, stride: int | None = None) -> np.ndarray:
    """Full-map iteration: top-left corners ``int64 [N,2]`` of a regular grid (default stride P/4, the
    paper's 75 % overlap) over the zone's bounding box, keeping patches that contain a zone texel. The last
    row/column is snapped to the map border so the whole zone is covered."""
    r = zone.shape[0]
    stride = stride or max(patch // 4, 1)
    if not zone.any():
        return np.zeros((0, 2), np.int64)
    rows, cols = np.nonzero(zone.any(1))[0], np.nonzero(zone.any(0))[0]

    def axis(lo: int, hi: int) -> np.ndarray:
        start = max(min(lo, r - patch), 0)
        stop = min(hi - patch + 1, r - patch)
        pos = list(range(start, max(stop, start) + 1, stride))
        if pos[-1] < stop:
            pos.append(stop)
        return np.array(pos)

    tt, ll = np.meshgrid(axis(rows[0], rows[-1]), axis(cols[0], cols[-1]), indexing="ij")
    counts = _window_sum(zone, patch)[tt, ll]
    keep = counts > 0
    return np.stack([tt[keep], ll[keep]], -1).astype(np.int64)


def crop(a: np.ndarray | torch.Tensor, top: int, left: int, patch: int):
    """``a[..., top:top+P, left:left+P]`` for channel-first arrays/tensors."""
    return a[..., top:top + patch, left:left + patch]
