"""Image panels for loggers: input | prediction | GT | predicted normals, one row per sample."""

from __future__ import annotations

import numpy as np
import torch


def _to_rgb(x: torch.Tensor) -> torch.Tensor:  # [B, C, H, W] in [0, 1] -> [B, 3, H, W]
    """Three channels as colour; any other count shows its first channel (V, before the cue or photo scale) in grey."""
    return x if x.shape[1] == 3 else x[:, :1].expand(-1, 3, -1, -1)


def make_panel(
    inputs: torch.Tensor,
    pred: torch.Tensor,
    target: torch.Tensor | None,
    normals: torch.Tensor,
    max_rows: int = 4,
) -> np.ndarray:
    """uint8 ``[rows*H, 4*W, 3]`` image.

    ``inputs [B, Cin, H, W]`` network input (centred V channel x2, shown as (x+1)/2); ``pred``/``target``
    ``[B, 1, H, W]`` displacements in network units, on one grey scale per row symmetric about 0 (max |GT|);
    ``normals [B, 3, H, W]`` unit tangent-space normals shown as (n+1)/2. A missing target is drawn black.
    """
    rows = min(max_rows, inputs.shape[0])
    inputs, pred, normals = (t[:rows].detach().float().cpu() for t in (inputs, pred, normals))
    target = torch.zeros_like(pred) if target is None else target[:rows].detach().float().cpu()
    scale = torch.maximum(target.abs().amax((1, 2, 3), keepdim=True), pred.abs().amax((1, 2, 3), keepdim=True))
    scale = scale.clamp_min(1e-6)
    tiles = [
        _to_rgb((inputs + 1) / 2),
        _to_rgb(0.5 + 0.5 * pred / scale),
        _to_rgb(0.5 + 0.5 * target / scale),
        (normals + 1) / 2,
    ]
    grid = torch.cat(tiles, dim=3)  # [rows, 3, H, 4W]
    grid = torch.cat(list(grid), dim=1)  # [3, rows*H, 4W]
    return (grid.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
