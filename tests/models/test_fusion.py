"""Inference copies (BatchNorm folded, channels-last weights) compute the network they were made from."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.data import astronaut
from torch import nn

from fds.data.patches import needs_cue, needs_scale, preprocess
from fds.demo import SHIPPED_CHECKPOINT
from fds.models.checkpoint import load_detail_module
from fds.models.fusion import fold_batchnorm, inference_copy
from fds.proxy.shading_cue import shading_cue


@pytest.mark.parametrize("name", ["dfdn_lite.safetensors", "dfdn_lite_v.safetensors"])
def test_folded_shipped_generator_matches_the_reference(name, sfm):
    """The shipped lite generators (the default, V + shading cue + photo scale, and its V-input predecessor) on real
    photo patches, folded and channels-last, against the module itself. The default's extra channels are the cue of
    the same image (``fds.proxy.shading_cue``) and a uniform photo scale of −1 (a photo upsampled twice).

    Tolerance: the folded weights are rounded once (relative 2⁻²⁴) and oneDNN's channels-last kernels sum in
    another order; float32 dot products of ≤ 2,048 terms (128 channels × 4 × 4 taps) reordered differ by
    ~√2048 · 2⁻²⁴ ≈ 3e-6 relative per layer, ~1.4e-5 after 26 layers in random-walk growth: outputs in
    [−1, 1] (tanh) agree to 5e-5 network units (25 nm at the checkpoint's 0.5 mm per unit).
    """
    module = load_detail_module(SHIPPED_CHECKPOINT.parent / name)
    fast = inference_copy(module)
    bns = sum(isinstance(m, nn.BatchNorm2d) for m in module.inference_generator.modules())
    assert bns > 20 and not any(isinstance(m, nn.BatchNorm2d) for m in fast.inference_generator.modules())
    img = torch.from_numpy(astronaut()).permute(2, 0, 1).float() / 255  # [3, 512, 512]
    channels = module.meta.channels
    if needs_cue(channels):
        img = torch.cat([img, shading_cue(astronaut(), sfm)], 0)
    if needs_scale(channels):
        img = torch.cat([img, torch.full_like(img[:1], -1.0)], 0)
    x = preprocess(torch.stack([img[:, r : r + 256, c : c + 256] for r, c in ((0, 0), (60, 150), (250, 250))]),
                   channels)
    with torch.no_grad():
        ref = module.predict_step({"input": x, "region": "forehead"}, 0)["displacement"]
        out = fast.predict_step({"input": x, "region": "forehead"}, 0)["displacement"]
    assert ref.abs().max() > 0.05  # the network does produce relief on these patches
    np.testing.assert_allclose(out.numpy(), ref.numpy(), atol=5e-5)
    # the reference module is untouched (still has its BatchNorm layers, still trainable)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in module.inference_generator.modules()) == bns
    assert all(p.requires_grad for p in module.parameters())


def test_fold_keeps_batchnorm_without_a_conv_before_it():
    net = nn.Sequential(nn.BatchNorm2d(3), nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
    with torch.no_grad():
        for bn in (net[0], net[2]):
            bn.running_mean.uniform_(-1, 1)
            bn.running_var.uniform_(0.5, 2)
    net.eval()
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        ref = net(x)
        assert fold_batchnorm(net) == 1
        assert [type(m) for m in net] == [nn.BatchNorm2d, nn.Conv2d, nn.ReLU]
        torch.testing.assert_close(net(x), ref, atol=1e-5, rtol=1e-5)
