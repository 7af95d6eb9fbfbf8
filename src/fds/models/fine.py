"""A full-resolution residual branch after PDRM: the texel-scale nonlinearity a pix2pix U-Net lacks.

pix2pix's U-Net never convolves at the patch's own resolution: its first layer is a 4 × 4 stride-2 conv and its
last a stride-2 transposed conv, so a 1–3 texel line is drawn from 16 features per 2 × 2 texels and one linear
up-step. :class:`FineRefiner` looks at ``[refined, input]`` at full resolution through a few 3 × 3 convs (dilated,
~19 texels across) and adds a correction in network displacement units (× ``disp_scale_mm`` = mm). Its last
conv starts at zero, so a generator given this branch starts as the one without it, exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import torch
from torch import nn


class FineRefiner(nn.Module):
    """``[B, in_channels, H, W] -> [B, 1, H, W]`` correction: conv 3 × 3 + ReLU, then one dilated conv 3 × 3 + ReLU
    per entry of ``dilations``, then a zero-initialised conv 3 × 3 to one channel. Same H, W (zero padding).

    Args:
        in_channels: 1 (PDRM's output) + the network input's channels.
        width: hidden channels.
        dilations: dilation of each hidden conv after the first (texels).
    """

    def __init__(self, in_channels: int = 5, width: int = 16, dilations: Sequence[int] = (1, 2, 4)) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU()]
        for d in dilations:
            layers += [nn.Conv2d(width, width, 3, padding=d, dilation=d), nn.ReLU()]
        self.body = nn.Sequential(*layers)
        self.out = nn.Conv2d(width, 1, 3, padding=1)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """He init for the hidden convs (ReLU), zeros for the last: the branch starts as a zero correction."""
        for m in self.body:
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(cast(torch.Tensor, m.bias))
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(cast(torch.Tensor, self.out.bias))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.body(x))
