"""Patches of UV maps: the paper's input preprocessing, random patch placement and full-map grids.

Coordinates are texel (row, col) of a patch's top-left corner in a UV map of size R (row 0 = top of the
chart). Zones (``forehead``, ``mouth``, ``face`` or an anatomical region) come from
:meth:`fds.facemodel.uvchart.UVChart.zone_mask`.

Preprocessing (paper §2, "Input"): the HSV value channel V = max(R, G, B) of the texture in [0, 1], minus its
mean over the patch, times 2 (:func:`preprocess`). ``channels="rgb"`` keeps three channels, each treated the
same way. ``channels="logv"`` takes the natural log of V (floored at :data:`LOG_FLOOR`) minus its patch mean
instead: a photo's brightness is albedo × shading × exposure, so in log units the exposure and the slowly varying
albedo and light are the removed mean and a wrinkle's shading gives the same input at any exposure (at V ≈ 0.5 a
small change gives about the same input as the ×2 linear mode). ``channels="v_cue"`` is the paper's V followed by
the two channels of the shading cue (:mod:`fds.proxy.shading_cue`: how brightness changes per radian of tilt
along u and v under the photo's own light), which arrive as channels 4–5 of the patch and pass unchanged.
``channels="v_cue_scale"`` adds the photo scale (:mod:`fds.proxy.photo_scale`: log2 photo pixels per texel, from
the fitted proxy) as channel 6, also unchanged: how much of a wrinkle the photo could show at all;
``channels="v_scale"`` is V and the photo scale alone (channel 4 of the patch). ``channels="y_cue_scale"`` is
``v_cue_scale`` with Rec. 601 luma Y = 0.299 R + 0.587 G + 0.114 B in V's place (minus its patch mean, ×2). On skin
V is the red channel, the one that light scatters furthest under the skin (the generator's subsurface blur is
widest in red, as real skin's is), so V shows a wrinkle's shading at its softest; luma weighs green most. V also
depends on how a JPEG subsampled the chroma, luma does not (docs/bench_photo_level.md, thirteenth session).
Displacements enter the network as
``clip(mm / disp_scale_mm, −1, 1)`` (:func:`to_network_units`).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from kornia.color import rgb_to_grayscale

Channels = Literal["v", "rgb", "logv", "v_cue", "v_cue_scale", "v_scale", "y_cue_scale"]
#: Floor added to V before the log of ``channels="logv"`` (≈ 5 sRGB levels): JPEG noise in deep shadow stays small.
LOG_FLOOR = 0.02


def channels_of(rgb: bool, log_input: bool = False, shading_cue: bool = False, photo_scale: bool = False,
                luma: bool = False) -> Channels:
    """The input mode of a data config's ``rgb`` / ``log_input`` / ``shading_cue`` flags (at most one is set),
    ``photo_scale`` (with V, alone or behind the shading cue) and ``luma`` (luma for V, with the cue and the scale
    only: "y_cue_scale")."""
    if luma:
        if not (shading_cue and photo_scale) or rgb or log_input:
            raise ValueError(f"luma=true goes with shading_cue=true and photo_scale=true (channels 'y_cue_scale'), "
                             f"got rgb={rgb}, log_input={log_input}, shading_cue={shading_cue}, "
                             f"photo_scale={photo_scale}")
        return "y_cue_scale"
    if rgb + log_input + shading_cue > 1:
        raise ValueError(f"rgb={rgb}, log_input={log_input}, shading_cue={shading_cue}: at most one input mode can "
                         "be set (log input and the shading cue go with the HSV V channel only)")
    if photo_scale and (rgb or log_input):
        raise ValueError(f"photo_scale=true goes with the HSV V input (and optionally the shading cue), not with "
                         f"rgb={rgb} / log_input={log_input}")
    if photo_scale:
        return "v_cue_scale" if shading_cue else "v_scale"
    return "rgb" if rgb else ("logv" if log_input else ("v_cue" if shading_cue else "v"))


def needs_cue(channels: Channels) -> bool:
    """Whether a mode's patches carry the shading cue as channels 4–5 (``[B, 5 or 6, H, W]``)."""
    return channels in ("v_cue", "v_cue_scale", "y_cue_scale")


def needs_scale(channels: Channels) -> bool:
    """Whether a mode's patches carry the photo scale as their last channel (``[B, 6 or 4, H, W]``)."""
    return channels in ("v_cue_scale", "v_scale", "y_cue_scale")


def patch_channels(channels: Channels) -> int:
    """Channels of a mode's patches before :func:`preprocess`: RGB, then the cue (2) and the scale (1) it reads."""
    return 3 + 2 * needs_cue(channels) + needs_scale(channels)


def preprocess(rgb: torch.Tensor, channels: Channels = "v") -> torch.Tensor:
    """Texture patches ``[B,3,H,W]`` in [0, 1] (``[B,5,H,W]`` with the shading cue behind RGB for "v_cue",
    ``[B,6,H,W]`` with the cue and the photo scale for "v_cue_scale" and "y_cue_scale", ``[B,4,H,W]`` with the
    scale for "v_scale") → network input ``[B,Cin,H,W]`` (Cin = 1 for "v" and "logv", 2 for "v_scale", 3 for
    "rgb" and "v_cue", 4 for "v_cue_scale" and "y_cue_scale"), the patch mean removed from the image channels
    (module doc)."""
    want = patch_channels(channels)
    if rgb.dim() != 4 or rgb.shape[1] != want:
        extra = {5: " (RGB in [0, 1], then the 2 shading-cue channels)",
                 6: " (RGB in [0, 1], the 2 shading-cue channels, then the photo scale)",
                 4: " (RGB in [0, 1], then the photo scale)"}.get(want, " in [0, 1]")
        raise ValueError(f"patches for channels={channels!r} must be [B, {want}, H, W]{extra}, got {tuple(rgb.shape)}")
    if needs_cue(channels) or channels == "v_scale":  # V (or luma), then the extra channels unchanged
        if channels == "y_cue_scale":
            v = rgb_to_grayscale(rgb[:, :3])  # kornia's default weights: Rec. 601 luma
        else:
            v = rgb[:, :3].amax(dim=1, keepdim=True)
        return torch.cat([(v - v.mean(dim=(2, 3), keepdim=True)) * 2.0, rgb[:, 3:]], dim=1)
    if channels == "v":
        x = rgb.amax(dim=1, keepdim=True)  # HSV's V = max(R, G, B), as kornia's rgb_to_hsv computes it
    elif channels == "logv":
        x = torch.log(rgb.amax(dim=1, keepdim=True) + LOG_FLOOR)
        return x - x.mean(dim=(2, 3), keepdim=True)
    elif channels == "rgb":
        x = rgb
    else:
        raise ValueError(f"channels must be 'v' (paper), 'logv', 'rgb', 'v_cue', 'v_cue_scale', 'v_scale' or "
                         f"'y_cue_scale', got {channels!r}")
    return (x - x.mean(dim=(2, 3), keepdim=True)) * 2.0


def in_channels(channels: Channels) -> int:
    """Network input channels for a preprocessing mode."""
    return {"rgb": 3, "v_cue": 3, "v_cue_scale": 4, "y_cue_scale": 4, "v_scale": 2}.get(channels, 1)


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


def _starts(size: int, patch: int, stride: int) -> list[int]:
    starts = list(range(0, size - patch + 1, stride))
    if starts[-1] != size - patch:
        starts.append(size - patch)  # the last window touches the map's far edge
    return starts


def patch_grid(mask: np.ndarray, patch: int, stride: int | None = None, min_fraction: float = 0.0) -> np.ndarray:
    """Full-map iteration: top-left corners ``int64 [N,2]`` (row, col) of the P×P windows on a stride grid
    (default P/4, the paper's 75 % overlap) that cover ``mask``.

    The grid runs 0, stride, 2·stride, … plus a last window flush with the far edge, so every texel of the map
    lies in some window. A window is kept when the fraction of mask texels in it is > ``min_fraction``
    (default: it touches the mask at all). Used by validation and by inference (``fds.synthesis``).
    """
    mask = np.asarray(mask, bool)
    if mask.ndim != 2:
        raise ValueError(f"mask must be a [H, W] boolean UV mask, got shape {mask.shape}")
    h, w = mask.shape
    stride = stride or max(patch // 4, 1)
    if patch > min(h, w):
        raise ValueError(f"patch size {patch} exceeds the map size {h}×{w}; lower the patch size")
    if stride < 1:
        raise ValueError(f"stride must be ≥ 1 texel, got {stride}")
    sat = np.zeros((h + 1, w + 1), np.int64)  # summed-area table of the mask
    sat[1:, 1:] = mask.cumsum(0).cumsum(1)
    r, c = np.meshgrid(np.asarray(_starts(h, patch, stride)), np.asarray(_starts(w, patch, stride)), indexing="ij")
    count = sat[r + patch, c + patch] - sat[r, c + patch] - sat[r + patch, c] + sat[r, c]
    keep = count > min_fraction * patch * patch
    return np.stack([r[keep], c[keep]], axis=1).astype(np.int64)


def grid_windows_in(zone: np.ndarray, valid: np.ndarray, patch: int, stride: int | None = None,
                    min_valid: float = 0.5) -> np.ndarray:
    """The :func:`patch_grid` windows ``int64 [N,2]`` (row, col) of ``zone`` that random training patches could
    also be (:func:`candidate_origins`): centre in ``zone`` and at least ``min_valid`` of the window valid in
    ``valid`` (bool ``[H, W]``). Validation on these scores what training fits; windows that merely touch the
    zone are mostly its rim, where a photo shows little (a face's side under yaw, hairline, ears)."""
    grid = patch_grid(zone, patch, stride)
    if len(grid) == 0:
        return grid
    zone, valid = np.asarray(zone, bool), np.asarray(valid, bool)
    if valid.shape != zone.shape:
        raise ValueError(f"valid mask {valid.shape} and zone {zone.shape} differ in shape")
    frac = _window_sum(valid, patch)[grid[:, 0], grid[:, 1]] / patch**2
    keep = zone[grid[:, 0] + patch // 2, grid[:, 1] + patch // 2] & (frac >= min_valid)
    return grid[keep]


def crop(a: np.ndarray | torch.Tensor, top: int, left: int, patch: int):
    """``a[..., top:top+P, left:left+P]`` for channel-first arrays/tensors."""
    return a[..., top:top + patch, left:left + patch]
