"""The paper's weight init: conv weights ~ N(0, 0.02), conv biases 0, BatchNorm gamma ~ N(1, 0.02), beta 0;
Linear layers keep PyTorch's defaults."""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def init_weights(module: nn.Module, std: float = 0.02, generator: torch.Generator | None = None) -> nn.Module:
    """Initialise every conv / BatchNorm inside ``module`` in place and return it."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
            m.weight.normal_(0.0, std, generator=generator)
            if m.bias is not None:
                m.bias.zero_()
        elif isinstance(m, nn.BatchNorm2d):
            m.weight.normal_(1.0, std, generator=generator)
            m.bias.zero_()
    return module
