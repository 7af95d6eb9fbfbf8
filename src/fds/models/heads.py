"""Heads mapping PDIM's output map ``[B, C, H, W]`` to K PCA weights ``[B, K]`` (no activation at the end).

- :class:`FCHead` is the paper's ``netFC``: flatten -> Linear 65536->2048->1024->512->64 with LeakyReLU(0.2)
  between layers (136.9M parameters at 256²).
- :class:`ConvPoolHead` is the compact ``lite`` head: strided convs, adaptive average pooling to a small grid,
  one Linear; its size does not depend on the patch size.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from fds.models.init import init_weights


class FCHead(nn.Module):
    """Fully connected head on the flattened map; ``in_features`` must equal C*H*W of its input."""

    def __init__(self, in_features: int = 256 * 256, hidden: Sequence[int] = (2048, 1024, 512), k: int = 64):
        super().__init__()
        self.in_features = in_features
        widths = [in_features, *hidden]
        layers: list[nn.Module] = []
        for a, b in zip(widths[:-1], widths[1:], strict=True):
            layers += [nn.Linear(a, b), nn.LeakyReLU(0.2)]
        layers.append(nn.Linear(widths[-1], k))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, C, H, W] -> [B, K]
        flat = x.flatten(1)
        if flat.shape[1] != self.in_features:
            raise ValueError(
                f"FCHead expects C*H*W = {self.in_features} input features, got {tuple(x.shape)}; "
                "set in_features to the patch's C*H*W"
            )
        return self.net(flat)


class ConvPoolHead(nn.Module):
    """``lite`` head: ``len(channels)`` x [Conv 4x4 s2 -> BatchNorm -> LeakyReLU(0.2)]
    -> AdaptiveAvgPool(grid) -> Linear(channels[-1]*grid² -> K), the Linear zero-initialised by default."""

    def __init__(
        self,
        in_channels: int = 1,
        channels: Sequence[int] = (16, 32, 64, 64),
        grid: int = 4,
        k: int = 64,
        zero_init_last: bool = True,
    ):
        super().__init__()
        layers: list[nn.Module] = []
        prev = in_channels
        for c in channels:
            layers += [nn.Conv2d(prev, c, 4, 2, 1, bias=False), nn.BatchNorm2d(c), nn.LeakyReLU(0.2)]
            prev = c
        layers.append(nn.AdaptiveAvgPool2d(grid))
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(prev * grid * grid, k)
        self.zero_init_last = zero_init_last
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Paper init for convs/BN; the last Linear zero (a flat coarse map at start) unless disabled."""
        self.fc.reset_parameters()
        init_weights(self)
        if self.zero_init_last:  # gradients still reach fc through its inputs
            nn.init.zeros_(self.fc.weight)
            nn.init.zeros_(self.fc.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, C, H, W] -> [B, K]
        return self.fc(self.features(x).flatten(1))
