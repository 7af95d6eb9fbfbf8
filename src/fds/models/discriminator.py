"""PatchGAN discriminator (pix2pix ``basic``, n_layers=3) on ``[condition, displacement]``.

Kernel 4 with padding 2 (the old pix2pix setting of the DFDN release), strides 2,2,2,1,1, widths
ndf, 2ndf, 4ndf, 8ndf, 1; BatchNorm after every conv but the first and last; LeakyReLU(0.2); no sigmoid
(logits / LSGAN scores). Convs before BatchNorm keep their bias, as in the 2017 pix2pix code (that gives
the paper's 2.77M with ndf=64; ``conv_bias=False`` drops them). A 256² input gives ``[B, 1, 35, 35]``.
"""

from __future__ import annotations

import torch
from torch import nn

from fds.models.init import init_weights


class PatchDiscriminator(nn.Module):
    """``forward(condition [B, Cc, H, W], displacement [B, 1, H, W]) -> scores [B, 1, h, w]``."""

    def __init__(
        self, in_channels: int = 2, ndf: int = 64, n_layers: int = 3, padding: int = 2, conv_bias: bool = True
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        layers: list[nn.Module] = [nn.Conv2d(in_channels, ndf, 4, 2, padding), nn.LeakyReLU(0.2)]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2**n, 8)
            stride = 2 if n < n_layers else 1
            layers += [
                nn.Conv2d(ndf * prev, ndf * mult, 4, stride, padding, bias=conv_bias),
                nn.BatchNorm2d(ndf * mult),
                nn.LeakyReLU(0.2),
            ]
        layers.append(nn.Conv2d(ndf * mult, 1, 4, 1, padding))
        self.net = nn.Sequential(*layers)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Paper init: conv weights N(0, 0.02), biases 0, BatchNorm gamma N(1, 0.02), beta 0."""
        init_weights(self)

    def forward(self, condition: torch.Tensor, displacement: torch.Tensor) -> torch.Tensor:
        x = torch.cat([condition, displacement], dim=1)
        if x.shape[1] != self.in_channels:
            raise ValueError(
                f"PatchDiscriminator was built for {self.in_channels} channels (condition + displacement), "
                f"got {condition.shape[1]} + {displacement.shape[1]}; set in_channels = Cin + 1"
            )
        return self.net(x)
