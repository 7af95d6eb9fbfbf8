"""Exposure warnings on real labelled faces (annotated landmarks) re-exposed as a camera would."""

from __future__ import annotations

import numpy as np
import pytest

from fds.proxy.landmarks import load_image, read_pts
from fds.proxy.quality import exposure_warnings, face_exposure, simulate_exposure

PHOTOS = ["lfpw_image_0001.png", "helen_1012675629_1.jpg", "image_0010.png"]


@pytest.mark.parametrize("name", PHOTOS)
def test_warns_on_dark_and_overexposed_faces_only(labelled_dir, name):
    image, landmarks = load_image(labelled_dir / name), read_pts((labelled_dir / name).with_suffix(".pts"))
    assert exposure_warnings(image, landmarks) == []
    for ev in (-1, 1):  # a stop either way is ordinary photography
        assert exposure_warnings(simulate_exposure(image, ev), landmarks) == []
    [dark] = exposure_warnings(simulate_exposure(image, -8), landmarks)
    assert dark.startswith("the face is very dark (median luma") and "< 20" in dark
    [bright] = exposure_warnings(simulate_exposure(image, 6), landmarks)
    assert bright.startswith("the face is overexposed (median luma") and "≥ 253" in bright


def test_exposure_statistics():
    grey = np.full((100, 100, 3), 128, np.uint8)
    t = np.linspace(np.pi, 0, 17)
    landmarks = np.zeros((68, 2))
    landmarks[:17] = np.stack([50 + 30 * np.cos(t), 50 + 30 * np.sin(t)], 1)  # jaw: the lower half-disc (y down)
    landmarks[17:27] = np.stack([np.linspace(20, 80, 10), np.full(10, 20.0)], 1)  # brows: a line 30 px above
    stats = face_exposure(grey, landmarks)
    assert stats["median_luma"] == pytest.approx(128.0) and stats["clipped_fraction"] == 0.0
    grey[50:] = 255  # the half-disc is blown out: its share of the face is π·30²/2 / (π·30²/2 + 60·30) = 0.44
    assert face_exposure(grey, landmarks)["clipped_fraction"] == pytest.approx(0.44, abs=0.03)
    np.testing.assert_array_equal(simulate_exposure(grey, 0), grey)
    assert simulate_exposure(grey, 1)[0, 0, 0] == 176  # one stop: linear 0.216 → 0.432 → sRGB 175.6
    assert (simulate_exposure(grey, 20) == 255).all() and (simulate_exposure(grey, -20) == 0).all()
