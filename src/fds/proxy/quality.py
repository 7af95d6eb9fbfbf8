"""Is a photo good enough for the proxy stage? Exposure of the face, measured where the landmarks put it, and the
face detector's confidence.

Pixels are 0-based, x = column, y = row down (as :mod:`fds.proxy.landmarks`). Luma is Rec. 601 on the 8-bit
sRGB values (0–255).
"""

from __future__ import annotations

import numpy as np
from skimage.draw import polygon

__all__ = ["face_exposure", "exposure_warnings", "confidence_warnings", "simulate_exposure", "face_size_px",
           "relative_fit_error", "DARK_LUMA", "BRIGHT_LUMA", "MIN_DETECTOR_SCORE"]

# face outline in iBUG-68 order: jaw 1..17 (0-based 0..16), then the brows back from 27 to 18 (26..17)
_OUTLINE = [*range(17), *range(26, 16, -1)]
CLIP_LOW, CLIP_HIGH = 3, 252  # 8-bit luma at or beyond which a pixel holds no detail
# Where a face's median luma makes the typical landmark error (NME) at least twice that of well-exposed photos:
# the 63 labelled photos re-exposed from -7 to +5 stops (benchmarks/exposure_landmarks.py, docs/bench_exposure.md),
# median NME 0.026 as taken. Dark: 2.3× in [15, 20), 1.9× in [20, 25). Bright: 2.1× at ≥ 253 (more than half the
# face blown to white, CLIP_HIGH), 1.4× in [250, 253).
DARK_LUMA, BRIGHT_LUMA = 20.0, 253.0
# Detector scores under which the typical landmark NME is at least twice that of the photos as taken (the same
# criterion): the 63 labelled photos as taken and re-exposed, blurred, occluded and rotated, 999 faces found
# (benchmarks/landmark_confidence.py, docs/bench_confidence.md), median NME 0.026 as taken. HOG at upsample 0
# (SVM margin): 2.6-2.9x below 0.388 (39-45 % fail NME > 0.08), 1.2-2.2x above. dlib's CNN (mmod), which runs
# only when HOG finds no face: every score bin 2.8x or more (76 % fail; scores seen 0.003-1.20), so every face
# it finds is warned on. HOG at upsample 1 found too few faces (18) for a threshold: not warned on.
MIN_DETECTOR_SCORE = {"hog0": 0.388, "cnn": float("inf")}


def face_exposure(image: np.ndarray, landmarks_px: np.ndarray) -> dict[str, float]:
    """Exposure statistics of the face region (jaw line and brows of ``landmarks_px [68, 2]``) of a ``uint8
    [H, W, 3]`` photo: ``median_luma`` (0–255) and ``clipped_fraction`` (share of face pixels with luma ≤ 3 or
    ≥ 252, i.e. crushed to black or blown to white)."""
    h, w = image.shape[:2]
    outline = np.asarray(landmarks_px, np.float64)[_OUTLINE]
    rr, cc = polygon(outline[:, 1], outline[:, 0], shape=(h, w))
    if len(rr) < 16:  # degenerate outline: use the landmarks' bounding box
        x0, y0 = np.clip(np.floor(outline.min(0)).astype(int), 0, [w - 1, h - 1])
        x1, y1 = np.clip(np.ceil(outline.max(0)).astype(int) + 1, 1, [w, h])
        rr, cc = np.mgrid[y0:y1, x0:x1].reshape(2, -1)
    rgb = image[rr, cc].astype(np.float64)
    luma = rgb @ np.array([0.299, 0.587, 0.114])
    return {"median_luma": float(np.median(luma)),
            "clipped_fraction": float(np.mean((luma <= CLIP_LOW) | (luma >= CLIP_HIGH)))}


def exposure_warnings(image: np.ndarray, landmarks_px: np.ndarray) -> list[str]:
    """Warnings (empty when none) for a face too dark or too bright for reliable landmarks (see ``DARK_LUMA``)."""
    stats = face_exposure(image, landmarks_px)
    luma, clipped = stats["median_luma"], stats["clipped_fraction"]
    why = ("landmarks of faces this {} err about twice as much as on well-exposed photos: the proxy's shape and "
           "pose may be wrong")
    if luma < DARK_LUMA:
        return [f"the face is very dark (median luma {luma:.0f}/255 < {DARK_LUMA:.0f}, {clipped:.0%} of it crushed "
                f"to black): " + why.format("dark")]
    if luma >= BRIGHT_LUMA:
        return [f"the face is overexposed (median luma {luma:.0f}/255 ≥ {BRIGHT_LUMA:.0f}, {clipped:.0%} of it "
                f"blown to white): " + why.format("bright")]
    return []


def face_size_px(landmarks_px: np.ndarray) -> float:
    """Size of a face in px: the geometric mean of its 68 landmarks' bounding-box width and height (px).
    Unlike the eye distance, it shrinks little when the head turns."""
    lm = np.asarray(landmarks_px, np.float64)
    w, h = lm.max(0) - lm.min(0)
    return float(np.sqrt(max(w, 1.0) * max(h, 1.0)))


def relative_fit_error(landmarks_px: np.ndarray, reprojection_error_px: float) -> float:
    """The proxy fit's mean landmark reprojection error (px, :class:`fds.proxy.fit.FitResult`) as a fraction of
    the face's size (:func:`face_size_px`): how far the detected landmarks are from any face the 3DMM can make,
    the same for a small and a large photo of one face."""
    return float(reprojection_error_px) / face_size_px(landmarks_px)


def confidence_warnings(detector: str, score: float | None) -> list[str]:
    """Warnings (empty when none) for a face the detector (``"hog0"``, ``"hog1"``, ``"cnn"``) found with a score
    too low for reliable landmarks (``MIN_DETECTOR_SCORE``: every ``cnn`` face); no warning without a score."""
    threshold = MIN_DETECTOR_SCORE.get(detector)
    if score is None or threshold is None or score >= threshold:
        return []
    why = ("the landmarks of faces found {} err about {} as much as on ordinary photos: the proxy's shape and pose "
           "may be wrong")
    if detector == "cnn":
        return [f"the face was found only by the fallback CNN detector (HOG found none; mmod score {score:.2f}): "
                + why.format("this way", "3 to 5 times")]
    return [f"the face detector is unsure of this face (HOG score {score:.2f} < {threshold:.2f}): "
            + why.format("this weakly", "2.5 to 3 times")]


def simulate_exposure(image: np.ndarray, ev: float) -> np.ndarray:
    """The ``uint8 [H, W, 3]`` sRGB photo as if exposed ``ev`` stops more: sRGB → linear, × 2^ev, clipped to
    [0, 1], → sRGB, 8 bit (how the exposure thresholds above were measured)."""
    x = np.asarray(image, np.float64) / 255
    linear = np.clip(np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4) * 2.0**ev, 0, 1)
    srgb = np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear ** (1 / 2.4) - 0.055)
    return np.round(srgb * 255).astype(np.uint8)
