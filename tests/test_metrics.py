"""Normal-map SSIM and PSNR of fds.metrics (kornia) against analytic values."""

from __future__ import annotations

import math

import pytest
import torch

from fds.metrics import normal_psnr_db, normal_ssim, normal_ssim_map

C1, C2 = 0.01**2, 0.03**2  # SSIM constants for a peak of 1


def tilted(theta_deg: float, size: int = 32) -> torch.Tensor:
    """A constant unit normal map ``[1, 3, size, size]`` tilted by ``theta_deg`` from +z towards +x."""
    t = math.radians(theta_deg)
    n = torch.tensor([math.sin(t), 0.0, math.cos(t)])
    return n[None, :, None, None].expand(1, 3, size, size).clone()


def test_identical_maps_give_ssim_one_and_infinite_psnr():
    n = torch.nn.functional.normalize(torch.randn(2, 3, 48, 48, generator=torch.Generator().manual_seed(0)), dim=1)
    assert normal_ssim(n, n).item() == pytest.approx(1.0, abs=1e-5)
    assert math.isinf(normal_psnr_db(n, n).item())


def test_psnr_of_a_known_tilt():
    """Flat vs tilted by θ: the images (n + 1)/2 differ by (sin θ, 0, cos θ − 1)/2, so MSE = (1 − cos θ)/6."""
    for theta in (2.0, 10.0, 30.0):
        expected = 10 * math.log10(6 / (1 - math.cos(math.radians(theta))))
        assert normal_psnr_db(tilted(theta), tilted(0)).item() == pytest.approx(expected, abs=1e-3)


def test_ssim_of_constant_maps_is_the_luminance_term():
    """Constant images have no variance: SSIM = (2ab + C1)/(a² + b² + C1) per channel, averaged."""
    theta = math.radians(25)
    pairs = [(0.5 + math.sin(theta) / 2, 0.5), (0.5, 0.5), ((1 + math.cos(theta)) / 2, 1.0)]
    expected = sum((2 * a * b + C1) / (a * a + b * b + C1) for a, b in pairs) / 3
    inner = torch.zeros(1, 1, 32, 32)
    inner[..., 8:-8, 8:-8] = 1  # away from the window's padded border
    ssim64 = normal_ssim(tilted(25).double(), tilted(0).double(), inner).item()
    assert ssim64 == pytest.approx(expected, abs=1e-7)
    # float32 maps (what the evaluation passes) lose ~1e-4 to the variances' cancellation
    assert normal_ssim(tilted(25), tilted(0), inner).item() == pytest.approx(expected, abs=5e-4)


def test_psnr_of_known_noise_and_the_mask():
    """Gaussian noise of σ on the normals is σ/2 on the image: PSNR = 10 log10(4 / σ²)."""
    base = tilted(36.87, 256)  # (0.6, 0, 0.8): the image stays inside [0, 1] with the noise
    sigma = 0.02
    noise = sigma * torch.randn(base.shape, generator=torch.Generator().manual_seed(1))
    noisy = base.clone()
    noisy[..., :, 128:] += noise[..., :, 128:]  # right half only
    right, left = torch.zeros(1, 1, 256, 256), torch.zeros(1, 1, 256, 256)
    right[..., 128:], left[..., :128] = 1, 1
    assert normal_psnr_db(noisy, base, right).item() == pytest.approx(10 * math.log10(4 / sigma**2), abs=0.1)
    assert math.isinf(normal_psnr_db(noisy, base, left).item())
    assert math.isnan(normal_psnr_db(noisy, base, torch.zeros_like(left)).item())
    # SSIM: 1 where nothing changed (the window stays in the left half), lower the stronger the noise
    ssim = normal_ssim_map(noisy, base)
    assert ssim[..., :, :100].min().item() == pytest.approx(1.0, abs=1e-5)
    stronger = normal_ssim(base + 2.5 * noise, base, right).item()
    assert 0 < stronger < normal_ssim(noisy, base, right).item() < 1
