"""Exposure and detector-confidence warnings on real labelled faces: re-exposed as a camera would, occluded,
rotated."""

from __future__ import annotations

import numpy as np
import pytest

from fds.proxy.landmarks import load_image, nme, read_pts
from fds.proxy.quality import (
    MIN_DETECTOR_SCORE,
    confidence_warnings,
    exposure_warnings,
    face_exposure,
    simulate_exposure,
)

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


def test_confidence_warnings_name_the_detector_and_its_score():
    hog = MIN_DETECTOR_SCORE["hog0"]
    assert confidence_warnings("hog0", hog) == confidence_warnings("hog0", 2.5) == []
    [weak] = confidence_warnings("hog0", hog - 0.2)
    assert weak.startswith(f"the face detector is unsure of this face (HOG score {hog - 0.2:.2f} < {hog:.2f})")
    assert "the proxy's shape and pose may be wrong" in weak
    for score in (0.1, 1.1, 2.5):  # whatever its score: the mmod detector runs only where HOG found no face
        [fallback] = confidence_warnings("cnn", score)
        assert fallback.startswith(f"the face was found only by the fallback CNN detector (HOG found none; mmod "
                                   f"score {score:.2f})")
    assert confidence_warnings("hog1", 0.01) == [] and confidence_warnings("cnn", None) == []


def _benchmark():
    """benchmarks/landmark_confidence.py, which measured the thresholds: the same degradations and face choice."""
    import importlib.util
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "benchmarks" / "landmark_confidence.py"
    spec = importlib.util.spec_from_file_location("landmark_confidence", script)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow  # detection on 63 photos and 26 degraded copies: 1-3 min on 2 cores
def test_confidence_warning_spares_good_photos_and_flags_failed_landmarks(labelled_dir):
    """As infer detects faces (HOG, then mmod): the labelled photos as taken nearly all pass, and a warned one has
    worse landmarks than the typical photo (what the warning claims); copies whose landmarks fail (NME > 0.08)
    under a hand over half the face or a 60° in-plane rotation mostly get the warning."""
    from fds.proxy.stage import ProxyStage

    bench, detector = _benchmark(), ProxyStage().detector
    photos = sorted(p for p in labelled_dir.iterdir() if p.suffix in (".jpg", ".png"))
    assert len(photos) == 63

    def run(image, gt):
        found, _ = bench.annotated_face(detector, image, gt)
        if found is None:
            return None
        box, score, kind = found
        return nme(detector.landmarks(image, box), gt), bool(confidence_warnings(kind, score))

    taken = [run(load_image(p), read_pts(p.with_suffix(".pts"))) for p in photos]
    assert all(t is not None for t in taken)  # every labelled face is found as taken
    typical = float(np.median([n for n, _ in taken]))
    warned = [n for n, w in taken if w]
    # The kit is hard on purpose (older, wrinkled faces, strong expressions, an 85 px greyscale face, group photos):
    # a few faces as taken are found weakly. One in eight is where a warning would stop being news.
    assert len(warned) <= len(photos) // 8, warned
    assert all(n > typical for n in warned), (warned, typical)

    degrade = bench.conditions()
    failed = []
    for p in photos[::5]:  # 13 photos spread over the kit
        image, gt = load_image(p), read_pts(p.with_suffix(".pts"))
        for name in ("hand", "rot_60"):
            got = run(*degrade[name](image, gt))
            if got is not None and got[0] > 0.08:
                failed.append((p.name, name, got[1]))
    assert len(failed) >= 8, failed  # the degradations do make landmarks fail
    # the warned region's typical NME is twice the photos' as taken: most failed copies must fall in it
    assert sum(w for *_, w in failed) > len(failed) / 2, failed
