"""PatchGAN discriminator (pix2pix ``basic``, n_layers=3) on ``[condition, displacement]``.

Kernel 4 with padding 2 (the old pix2pix setting of the DFDN release), strides 2,2,2,1,1, widths
ndf, 2ndf, 4ndf, 8ndf, 1; LeakyReLU(0.2); no sigmoid (logits / LSGAN scores). Convs before BatchNorm keep their
bias, as in the 2017 pix2pix code (that gives the paper's 2.77M with ndf=64; ``conv_bias=False`` drops them).
A 256² input gives ``[B, 1, 35, 35]``.

``norm`` picks how the hidden convs are normalised:

- ``"batch"`` (the paper): BatchNorm after every conv but the first and last. The module scores the real and the
  fake batch in separate passes, so each is normalised with its own statistics: whatever tells them apart in
  those statistics (a fake batch of lower amplitude, say) is divided out before D can use it.
- ``"spectral"``: no BatchNorm; every conv's weight is divided by its largest singular value (spectral
  normalisation), which keeps D's gradients bounded without mixing samples.
- ``"none"``: no normalisation.

``detail_gain`` multiplies the displacement (network units) before it meets the condition. Photo-level detail is
≈0.085 mm RMS: 0.04 network units at the paper's 2 mm per unit, 0.17 at the recipes' 0.5 mm, while the condition
channels (V, the cue, the photo scale) are of order 1 and the first layer's weights start at N(0, 0.02). Measured
(``benchmarks/discriminator_check.py``, 300 steps against the frozen default): the paper's D tells the GT from the
prediction on 51 % of patches (chance), a spectral-normalised one on 83 % at gain 1 and on all of them at gain 20.

``detail_sigma_texels`` > 0 blurs the displacement (Gaussian, σ in texels) before D sees it, so D judges only the
band a photo can show: below ~2 texels the GT holds pores the unwrap does not resolve, and a D that sees them asks
the generator to invent them (a fine grain over every face; docs/bench_photo_level.md).
"""

from __future__ import annotations

import kornia
import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from fds.models.init import init_weights

NORMS = ("batch", "spectral", "none")


class PatchDiscriminator(nn.Module):
    """``forward(condition [B, Cc, H, W], displacement [B, 1, H, W]) -> scores [B, 1, h, w]``."""

    def __init__(
        self, in_channels: int = 2, ndf: int = 64, n_layers: int = 3, padding: int = 2, conv_bias: bool = True,
        norm: str = "batch", detail_gain: float = 1.0, detail_sigma_texels: float = 0.0,
    ) -> None:
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"PatchDiscriminator norm must be one of {NORMS}, got {norm!r}")
        if not detail_gain > 0:
            raise ValueError(f"PatchDiscriminator detail_gain must be > 0, got {detail_gain}")
        if not detail_sigma_texels >= 0:
            raise ValueError(f"PatchDiscriminator detail_sigma_texels must be >= 0, got {detail_sigma_texels}")
        self.in_channels, self.norm, self.detail_gain = in_channels, norm, float(detail_gain)
        self.detail_sigma_texels = float(detail_sigma_texels)
        layers: list[nn.Module] = [nn.Conv2d(in_channels, ndf, 4, 2, padding), nn.LeakyReLU(0.2)]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2**n, 8)
            stride = 2 if n < n_layers else 1
            layers.append(nn.Conv2d(ndf * prev, ndf * mult, 4, stride, padding,
                                    bias=conv_bias or norm != "batch"))
            if norm == "batch":
                layers.append(nn.BatchNorm2d(ndf * mult))
            layers.append(nn.LeakyReLU(0.2))
        layers.append(nn.Conv2d(ndf * mult, 1, 4, 1, padding))
        self.net = nn.Sequential(*layers)
        self.reset_parameters()
        if norm == "spectral":
            for m in self.net:
                if isinstance(m, nn.Conv2d):
                    spectral_norm(m)

    def reset_parameters(self) -> None:
        """Paper init: conv weights N(0, 0.02), biases 0, BatchNorm gamma N(1, 0.02), beta 0 (under spectral
        normalisation the raw weight is drawn so; the layer divides it by its largest singular value)."""
        init_weights(self)
        with torch.no_grad():
            for m in self.net:
                params = getattr(m, "parametrizations", None)
                if params is not None and "weight" in params:
                    params.weight.original.normal_(0.0, 0.02)

    def forward(self, condition: torch.Tensor, displacement: torch.Tensor) -> torch.Tensor:
        if self.detail_sigma_texels > 0:
            sigma = self.detail_sigma_texels
            k = 2 * int(3 * sigma + 0.5) + 1
            displacement = kornia.filters.gaussian_blur2d(displacement, (k, k), (sigma, sigma), border_type="reflect")
        x = torch.cat([condition, displacement * self.detail_gain], dim=1)
        if x.shape[1] != self.in_channels:
            raise ValueError(
                f"PatchDiscriminator was built for {self.in_channels} channels (condition + displacement), "
                f"got {condition.shape[1]} + {displacement.shape[1]}; set in_channels = Cin + 1"
            )
        return self.net(x)
