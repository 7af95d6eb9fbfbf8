"""Cavity occlusion: grooves darken, flat skin and ridges do not, and the settings mean what they say."""

import numpy as np
import pytest

from fds.data.occlusion import cavity_occlusion

TEXEL = (0.1, 0.1)  # mm per texel (u, v)


def _groove(depth_mm: float, n: int = 96) -> np.ndarray:
    """A vertical Gaussian groove 0.3 mm wide (σ) through the middle of an ``n × n`` patch, depth in mm."""
    x = (np.arange(n) - n / 2) * TEXEL[0]
    return np.tile(-depth_mm * np.exp(-0.5 * (x / 0.3) ** 2), (n, 1)).astype(np.float32)


def test_groove_floor_darkens_and_flat_skin_stays_lit():
    d = _groove(0.3)
    valid = np.ones_like(d, bool)
    occ = cavity_occlusion(d, valid, TEXEL)
    mid = d.shape[1] // 2
    assert occ[:, mid].max() < 0.95          # the floor of a 0.3 mm groove loses light
    assert np.allclose(occ[:, :10], 1.0)     # 4 mm away: flat skin, untouched
    assert occ.min() >= 1.0 - 0.6 - 1e-6     # never darker than max_darkening allows
    deeper = cavity_occlusion(_groove(0.6), valid, TEXEL)
    assert deeper[:, mid].mean() < occ[:, mid].mean()


def test_ridge_and_flat_are_not_occluded():
    valid = np.ones((64, 64), bool)
    assert np.array_equal(cavity_occlusion(np.zeros((64, 64), np.float32), valid, TEXEL), np.ones((64, 64)))
    ridge = -_groove(0.3, 64)
    assert cavity_occlusion(ridge, valid, TEXEL)[:, 32].min() == 1.0


def test_strength_zero_and_outside_valid_give_ones():
    d = _groove(0.3)
    valid = np.ones_like(d, bool)
    assert np.array_equal(cavity_occlusion(d, valid, TEXEL, strength=0.0), np.ones_like(d))
    valid[:, 40:] = False
    occ = cavity_occlusion(d, valid, TEXEL)
    assert np.all(occ[:, 40:] == 1.0) and occ[:, :40].min() < 1.0
    assert occ.dtype == np.float32


def test_bad_radius_is_named():
    with pytest.raises(ValueError, match="radius_mm"):
        cavity_occlusion(_groove(0.3), np.ones((96, 96), bool), TEXEL, radius_mm=0.0)
