"""Inference copies of networks: BatchNorm folded into the convolution before it, channels-last weights.

In eval mode a ``BatchNorm2d`` after a convolution is an affine map per output channel, y = γ·(x − μ)/√(σ² + ε)
+ β, so it folds into that convolution's weights and bias (``torch.nn.utils.fusion.fuse_conv_bn_eval``, for
``Conv2d`` and ``ConvTranspose2d``). The fused network computes the same function up to float32 rounding
(the folded weight is rounded once: relative differences of a few 1e-7 per layer). Channels-last (NHWC)
weights make PyTorch's CPU convolutions (oneDNN) skip the layout reorders around each call; together the
shipped ``lite`` generator runs ~1.8× faster on a 2-core CPU (``benchmarks/bench_pipeline.py``).

The original module stays untouched: it is the reference the tests and the benchmark compare against.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


def fold_batchnorm(module: nn.Module) -> int:
    """Fold every ``BatchNorm2d`` that directly follows a ``Conv2d`` / ``ConvTranspose2d`` inside an
    ``nn.Sequential`` of ``module`` (in place; eval semantics, running statistics). Returns how many."""
    folded = sum(fold_batchnorm(child) for child in module.children())
    if isinstance(module, nn.Sequential):
        layers = list(module)
        out: list[nn.Module] = []
        i = here = 0
        while i < len(layers):
            layer, nxt = layers[i], layers[i + 1] if i + 1 < len(layers) else None
            if isinstance(layer, nn.Conv2d | nn.ConvTranspose2d) and isinstance(nxt, nn.BatchNorm2d) \
                    and nxt.track_running_stats and nxt.running_mean is not None:
                out.append(fuse_conv_bn_eval(layer.eval(), nxt.eval(), transpose=isinstance(layer, nn.ConvTranspose2d)))
                here += 1
                i += 2
            else:
                out.append(layer)
                i += 1
        if here:
            for k in list(module._modules):
                del module._modules[k]
            for index, layer in enumerate(out):
                module.add_module(str(index), layer)
        folded += here
    return folded


def inference_copy(module: nn.Module, channels_last: bool = True, fold_bn: bool = True) -> nn.Module:
    """A deep copy of ``module`` in eval mode for prediction only: BatchNorm folded (``fold_bn``), weights
    channels-last (``channels_last``), no gradients. Inputs may stay NCHW: convolutions with channels-last
    weights return channels-last activations."""
    out = copy.deepcopy(module).eval()
    for p in out.parameters():
        p.requires_grad_(False)
    if fold_bn:
        fold_batchnorm(out)
    if channels_last:
        out = out.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # nn.Module.to accepts it
    return out
