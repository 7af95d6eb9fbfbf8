"""pix2pix-style U-Net (``unet_256`` / ``unet_64`` of the DFDN release) as an explicit encoder/decoder.

Layer order follows pix2pix exactly, so parameter counts match the paper's PDIM (54.41M) and PDRM (29.24M):

- down step i: ``[LeakyReLU(0.2)] -> Conv 4x4 s2 p1 -> [BatchNorm]`` (no activation before the first conv,
  no norm on the first and innermost convs);
- up step i: ``ReLU -> ConvTranspose 4x4 s2 p1 -> BatchNorm`` on the concatenation of the deeper output and
  the skip (the innermost up step sees only the bottleneck); the outermost up step has a bias, no norm and
  ends in Tanh (configurable).

pix2pix's in-place LeakyReLU also rewrites the skip tensor, but the up step's ReLU makes that invisible
(ReLU(LeakyReLU(x)) = ReLU(x)), so plain out-of-place activations give the same function.
Every conv has a bias by default (2017 pix2pix, before its ``use_bias`` switch); ``conv_bias=False`` drops
the ones followed by BatchNorm. Input ``[B, C_in, H, W]`` with H and
W divisible by ``2**num_downs``; output ``[B, C_out, H, W]``.
"""

from __future__ import annotations

import torch
from torch import nn

from fds.models.init import init_weights


def unet_widths(num_downs: int, ngf: int, max_mult: int = 8) -> list[int]:
    """Channel width after each down step: ngf, 2ngf, 4ngf, 8ngf, 8ngf, ... (capped at ``max_mult * ngf``)."""
    return [ngf * min(2**i, max_mult) for i in range(num_downs)]


class UNet(nn.Module):
    """U-Net generator with ``num_downs`` stride-2 downsamplings.

    Args:
        in_channels: input channels (1 for the V-channel patch, 2 for PDRM's [coarse, input]).
        out_channels: output channels.
        num_downs: number of stride-2 steps (8 for ``unet_256``, 6 for the paper's PDRM).
        ngf: width of the first layer.
        max_mult: cap on the width multiplier (pix2pix: 8).
        dropout: dropout in the three up steps next to the innermost one (pix2pix option; paper: 0).
        final_activation: ``"tanh"`` (output in [-1, 1]) or ``"none"``.
        conv_bias: give every conv a bias, as the 2017 pix2pix code of the release did (redundant before
            BatchNorm; False drops those biases, as later pix2pix does).
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        num_downs: int = 8,
        ngf: int = 64,
        max_mult: int = 8,
        dropout: float = 0.0,
        final_activation: str = "tanh",
        conv_bias: bool = True,
    ) -> None:
        super().__init__()
        if num_downs < 2:
            raise ValueError(f"num_downs must be >= 2, got {num_downs}")
        if final_activation not in ("tanh", "none"):
            raise ValueError(f"final_activation must be 'tanh' or 'none', got {final_activation!r}")
        self.num_downs = num_downs
        widths = unet_widths(num_downs, ngf, max_mult)
        self.down = nn.ModuleList()
        prev = in_channels
        for i, w in enumerate(widths):
            outermost, innermost = i == 0, i == num_downs - 1
            layers: list[nn.Module] = [] if outermost else [nn.LeakyReLU(0.2)]
            layers.append(nn.Conv2d(prev, w, 4, 2, 1, bias=conv_bias))
            if not (outermost or innermost):
                layers.append(nn.BatchNorm2d(w))
            self.down.append(nn.Sequential(*layers))
            prev = w
        # up[j] undoes down[j]; it runs from the innermost (j = num_downs-1) to the outermost (j = 0).
        self.up = nn.ModuleList()
        for j in range(num_downs):
            outermost, innermost = j == 0, j == num_downs - 1
            in_w = widths[j] if innermost else 2 * widths[j]
            out_w = out_channels if outermost else widths[j - 1]
            layers = [nn.ReLU(), nn.ConvTranspose2d(in_w, out_w, 4, 2, 1, bias=conv_bias or outermost)]
            if outermost:
                if final_activation == "tanh":
                    layers.append(nn.Tanh())
            else:
                layers.append(nn.BatchNorm2d(out_w))
                # pix2pix puts dropout on the 3 up steps just below the bottleneck's own one.
                if dropout > 0 and num_downs - 5 < j < num_downs - 1:
                    layers.append(nn.Dropout(dropout))
            self.up.append(nn.Sequential(*layers))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Paper init: conv weights N(0, 0.02), biases 0, BatchNorm gamma N(1, 0.02), beta 0."""
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        factor = 2**self.num_downs
        if x.ndim != 4 or x.shape[-1] % factor or x.shape[-2] % factor:
            raise ValueError(
                f"UNet({self.num_downs} downsamplings) needs x [B, C, H, W], H and W multiples of {factor}; "
                f"got shape {tuple(x.shape)}"
            )
        skips: list[torch.Tensor] = []
        h = x
        for layer in self.down:
            h = layer(h)
            skips.append(h)
        h = self.up[-1](skips[-1])
        for j in range(self.num_downs - 2, -1, -1):
            h = self.up[j](torch.cat([skips[j], h], dim=1))
        return h
