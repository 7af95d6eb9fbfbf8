"""Full-map detail synthesis: UV texture → displacement map (mm) by Gaussian-blended patches, as DFDN.

Maps follow the project's UV convention: ``[R, R]`` texel grids, column ↔ u (right), row ↔ v (**down**), row 0
is v = 0 (the forehead for the SFM chart). The displacement is in mm along the proxy's outward normal
(positive = outward).

Patch mode (the paper): patches of ``patch_size`` P texels are cut on a grid with stride P/4 (75 % overlap, up
to 16 patches per texel) wherever the window touches the face mask; the network's outputs are stitched with
the paper's Gaussian weight w = ``fspecial('gaussian', P, σ)`` (σ = 50 for P = 256, scaled with P):
D = Σ(w·patch) / Σw. Texels outside the coverage (mask ∩ some patch) are 0.

Full mode: the network runs once on the whole map (for fully-convolutional models); the per-patch mean
removal of the paper's input becomes removal of the local P×P mean.

Network input (paper preprocessing, :func:`fds.data.patches.preprocess`): the HSV V channel (max of R, G, B in [0, 1]),
minus its per-patch mean, ×2; ``[B, 1, P, P]``. The network returns displacement in network units
d ∈ [−1, 1]; displacement_mm = d · ``disp_scale_mm``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from kornia.color import rgb_to_hsv

from fds.data.patches import patch_grid
from fds.data.patches import preprocess as paper_patch_input

#: σ of the paper's Gaussian weight for 256-texel patches (``areas.mat``: fspecial('gaussian', 256, 50)).
PAPER_SIGMA_256 = 50.0

Predict = Callable[..., torch.Tensor | Mapping[str, torch.Tensor]]
Preprocess = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class DetailSynthesis:
    """Result of :func:`synthesize_displacement` (UV image convention, row 0 = v 0)."""

    displacement_mm: np.ndarray  # [R, R] float32, mm along the outward normal; 0 outside ``coverage``
    coverage: np.ndarray  # [R, R] bool, texels that got a prediction and lie in the mask
    patches: dict[str, np.ndarray] = field(default_factory=dict)  # region → [N, 2] int (row, col) top-left
    mode: str = "patches"

    @property
    def resolution(self) -> int:
        return int(self.displacement_mm.shape[0])


# ---------------------------------------------------------------------------------------------- weights, grid
def gaussian_weight(patch_size: int = 256, sigma: float | None = None) -> np.ndarray:
    """MATLAB ``fspecial('gaussian', P, σ)``: ``float64 [P, P]``, centred at (P−1)/2, sum 1.

    σ defaults to 50·P/256 (the paper's σ = 50 at P = 256). As fspecial, values below eps·max are zeroed.
    """
    if int(patch_size) < 1:
        raise ValueError(f"patch_size must be a positive number of texels, got {patch_size}")
    p = int(patch_size)
    sigma = PAPER_SIGMA_256 * p / 256.0 if sigma is None else float(sigma)
    if sigma <= 0:
        raise ValueError(f"sigma must be positive (texels), got {sigma}")
    x = np.arange(p, dtype=np.float64) - (p - 1) / 2.0
    g = np.exp(-(x[:, None] ** 2 + x[None, :] ** 2) / (2.0 * sigma**2))
    g[g < np.finfo(np.float64).eps * g.max()] = 0.0
    return g / g.sum()


def upsample_mask(mask: np.ndarray, resolution: int) -> np.ndarray:
    """Nearest-neighbour resampling of a square UV mask to ``resolution``² (texel centres, image convention).

    Region masks are cheap at 1024² and costly to rasterise at 4096²: compute them at 1024 and upsample.
    """
    m = np.asarray(mask, bool)
    if m.ndim != 2:
        raise ValueError(f"mask must be a [H, W] boolean UV mask, got shape {m.shape}")
    rows = ((np.arange(resolution) + 0.5) * m.shape[0] / resolution).astype(np.int64)
    cols = ((np.arange(resolution) + 0.5) * m.shape[1] / resolution).astype(np.int64)
    return m[rows[:, None], cols[None, :]]


# ---------------------------------------------------------------------------------------------- network input
def texture_to_tensor(uv_texture: np.ndarray | torch.Tensor, resolution: int) -> torch.Tensor:
    """A UV texture (``uint8``/float ``[H, W, 3]`` or ``[H, W]``, or float ``[1|3, H, W]`` in [0, 1]) →
    float32 ``[1, 3, R, R]`` in [0, 1], resampled (bilinear, antialiased when shrinking) to R×R."""
    # np.array copies: cached textures may be read-only arrays
    t = torch.as_tensor(np.array(uv_texture) if isinstance(uv_texture, np.ndarray) else uv_texture)
    if t.dtype == torch.uint8:
        t = t.float() / 255.0
    elif t.dtype == torch.uint16:
        t = t.float() / 65535.0
    elif not t.is_floating_point():
        raise TypeError(f"uv_texture must be uint8, uint16 or float in [0, 1], got {t.dtype}")
    t = t.float()
    if t.dim() == 2:
        t = t[None]
    elif t.dim() == 3 and t.shape[-1] in (1, 3, 4) and t.shape[0] not in (1, 3):
        t = t[..., :3].permute(2, 0, 1)  # [H, W, C] → [C, H, W]
    if t.dim() != 3 or t.shape[0] not in (1, 3):
        raise ValueError(f"uv_texture must be [H, W, 3], [H, W] or [C, H, W] with C in (1, 3), got {tuple(t.shape)}")
    t = t.expand(3, -1, -1)[None]
    if tuple(t.shape[-2:]) != (resolution, resolution):
        shrink = min(t.shape[-2:]) > resolution
        t = F.interpolate(t, size=(resolution, resolution), mode="bilinear", align_corners=False, antialias=shrink)
    return t.clamp(0.0, 1.0).contiguous()


def paper_map_input(rgb: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Full-map version of :func:`fds.data.patches.preprocess`: V minus its local P×P mean, ×2 (``[1, 1, R, R]``)."""
    v = rgb_to_hsv(rgb)[:, 2:3]  # HSV V channel, as in fds.data.patches.preprocess
    k = int(patch_size) | 1  # odd window centred on each texel
    pad = k // 2
    local = F.avg_pool2d(F.pad(v, (pad, pad, pad, pad), mode="replicate"), k, stride=1)
    return (v - local) * 2.0


# ---------------------------------------------------------------------------------------------- synthesis
def _as_displacement(out, expected: tuple[int, ...], name: str) -> torch.Tensor:
    if isinstance(out, Mapping):
        if "displacement" not in out:
            raise KeyError(f"{name} returned a mapping without 'displacement' (keys: {sorted(out)})")
        out = out["displacement"]
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != expected:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"{name} must return displacement {list(expected)} in network units, got {shape}")
    out = out.detach().float()
    if not bool(torch.isfinite(out).all()):
        raise ValueError(f"{name} returned non-finite displacement values (NaN/inf); check the checkpoint")
    return out


def synthesize_displacement(
    uv_texture: np.ndarray | torch.Tensor,
    predict: Predict,
    *,
    resolution: int,
    disp_scale_mm: float,
    mask: np.ndarray | None = None,
    regions: Mapping[str, np.ndarray] | None = None,
    patch_size: int = 256,
    stride: int | None = None,
    sigma: float | None = None,
    batch_size: int = 16,
    mode: str = "patches",
    preprocess: Preprocess | None = None,
    min_fraction: float = 0.0,
    device: str | torch.device | None = None,
    shared_network: bool = False,
    extra: torch.Tensor | None = None,
) -> DetailSynthesis:
    """Displacement map (mm) of a face from its UV texture, by the network ``predict``.

    Args:
        uv_texture: the unwrapped photo, any size (see :func:`texture_to_tensor`); resampled to ``resolution``.
        predict: network on preprocessed patches ``[B, Cin, P, P]`` → displacement ``[B, 1, P, P]`` in network
            units (a tensor, or a mapping with ``"displacement"`` such as ``DFDNModule.predict_step``'s).
            Called ``predict(x)``, or ``predict(x, region)`` when ``regions`` is given.
        resolution: R, the output map size (1024 / 2048 / 4096).
        disp_scale_mm: mm per network unit.
        mask: ``bool [R, R]`` face texels (e.g. ``fds.facemodel.region_masks(fm, R)["face"]``); default: the whole map.
        regions: region name → ``bool [R, R]`` mask, one patch grid (and ``predict`` region) each; all patches
            are blended together (the paper's forehead and mouth models). Overrides ``mask``.
        patch_size, stride, sigma: P texels, default stride P/4, default σ = 50·P/256.
        batch_size: patches per ``predict`` call.
        mode: ``"patches"`` (Gaussian-blended patches) or ``"full"`` (one call on the whole map).
        preprocess: RGB ``[B, 3, P, P]`` in [0, 1] → network input; default the paper's (V, mean removed, ×2);
            in full mode it gets the whole map (default: local-mean removal, :func:`paper_map_input`).
        min_fraction: keep windows with more than this fraction of mask texels.
        device: where the texture, accumulators and ``predict`` inputs live (default CPU).
        shared_network: ``predict`` ignores the region (one network serves them all): a window that several
            regions' grids share is predicted once and its output blended once per region, as if predicted
            again (the zones overlap around the nose; for the SFM chart at 1024² this saves 69 of 238 calls).
        extra: float ``[C, R, R]`` per-texel channels at ``resolution`` that ride behind the texture's RGB into
            ``preprocess`` (patches ``[B, 3 + C, P, P]``; e.g. the shading cue of channels "v_cue"); patch mode only.
    """
    if resolution < 8:
        raise ValueError(f"resolution must be ≥ 8 texels, got {resolution}")
    if disp_scale_mm <= 0:
        raise ValueError(f"disp_scale_mm must be positive (mm per network unit), got {disp_scale_mm}")
    if mode not in ("patches", "full"):
        raise ValueError(f"mode must be 'patches' or 'full', got {mode!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be ≥ 1, got {batch_size}")
    r_ = int(resolution)
    dev = torch.device(device) if device is not None else torch.device("cpu")

    def check_mask(m: np.ndarray, name: str) -> np.ndarray:
        m = np.asarray(m, bool)
        if m.shape != (r_, r_):
            raise ValueError(f"{name} must be a bool [{r_}, {r_}] UV mask at the output resolution, got {m.shape}")
        return m

    if regions is not None:
        if not regions:
            raise ValueError("regions is empty; pass at least one region mask or use mask=")
        region_masks = {k: check_mask(v, f"regions[{k!r}]") for k, v in regions.items()}
    else:
        region_masks = {"": check_mask(mask, "mask") if mask is not None else np.ones((r_, r_), bool)}
    union = np.logical_or.reduce(list(region_masks.values()))
    rgb = texture_to_tensor(uv_texture, r_).to(dev)  # [1, 3, R, R]
    if extra is not None:
        if mode != "patches" or extra.dim() != 3 or tuple(extra.shape[1:]) != (r_, r_):
            raise ValueError(f"extra must be [C, {r_}, {r_}] channels at the output resolution, in patch mode; got "
                             f"{tuple(extra.shape)} in mode {mode!r}")
        rgb = torch.cat([rgb, extra.to(dev, torch.float32)[None]], 1)  # [1, 3 + C, R, R]
    cin = rgb.shape[1]

    def call(x: torch.Tensor, region: str) -> torch.Tensor | Mapping[str, torch.Tensor]:
        return predict(x) if regions is None else predict(x, region)

    with torch.no_grad():
        if mode == "full":
            x = (preprocess or (lambda t: paper_map_input(t, patch_size)))(rgb)
            d = _as_displacement(call(x, next(iter(region_masks))), (1, 1, r_, r_), "predict")[0, 0]
            coverage = union
            disp = torch.where(torch.from_numpy(coverage).to(dev), d, torch.zeros((), device=dev))
            return DetailSynthesis(
                (disp * disp_scale_mm).cpu().numpy().astype(np.float32), coverage, {}, mode="full"
            )

        p = int(patch_size)
        step = int(stride) if stride is not None else max(1, p // 4)
        weight = torch.from_numpy(gaussian_weight(p, sigma)).float().to(dev)  # [P, P]
        num = torch.zeros(r_, r_, device=dev)
        den = torch.zeros(r_, r_, device=dev)
        prep = preprocess or paper_patch_input
        grids = {name or "face": patch_grid(m, p, step, min_fraction) for name, m in region_masks.items()}
        offsets = (torch.arange(p, device=dev)[:, None] * r_ + torch.arange(p, device=dev)[None, :]).reshape(-1)
        flat_rgb, flat_num, flat_den = rgb.reshape(cin, -1), num.view(-1), den.view(-1)
        # one job per (network, window): with a shared network, a window in several grids runs once and
        # counts once per grid it is in (``uses``)
        jobs: list[tuple[str, np.ndarray, np.ndarray]] = []  # (region passed to predict, corners [N, 2], uses [N])
        if shared_network and len(grids) > 1:
            corners, uses = np.unique(np.concatenate(list(grids.values())), axis=0, return_counts=True)
            jobs.append((next(iter(region_masks)), corners, uses))
        else:
            jobs += [(name, g, np.ones(len(g), np.int64)) for name, g in zip(region_masks, grids.values(), strict=True)]
        for name, grid, uses in jobs:
            for s in range(0, len(grid), batch_size):
                window = torch.from_numpy(grid[s : s + batch_size]).to(dev)
                count = torch.from_numpy(uses[s : s + batch_size]).float().to(dev)[:, None, None]  # [b, 1, 1]
                b = window.shape[0]
                idx = (window[:, 0:1] * r_ + window[:, 1:2] + offsets[None]).reshape(-1)  # [b·P·P] texels
                crops = flat_rgb[:, idx].view(cin, b, p, p).transpose(0, 1)  # [b, 3 (+ C), P, P]
                out = _as_displacement(call(prep(crops), name), (b, 1, p, p), "predict")
                w = weight * count  # [b, P, P]
                flat_num.index_add_(0, idx, (out[:, 0] * w).reshape(-1))
                flat_den.index_add_(0, idx, w.reshape(-1))
    coverage = union & (den > 0).cpu().numpy()
    disp = torch.where(den > 0, num / den.clamp_min(1e-30), torch.zeros((), device=dev))
    disp = disp.cpu().numpy() * np.float32(disp_scale_mm)
    disp[~coverage] = 0.0
    return DetailSynthesis(disp.astype(np.float32), coverage, grids, mode="patches")
