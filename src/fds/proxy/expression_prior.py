"""Expression priors: emotion probabilities or landmark geometry → expression coefficients of a face model.

Emotion prior
    SFM: its 6 emotion blendshapes take the matching FER probabilities (neutral maps to nothing), times
    ``strength``. ICT-FaceKit (ARKit-style blendshapes): each emotion activates the blendshapes of its
    prototypical FACS action units (Ekman & Friesen's EMFACS prototypes), table ``EMOTION_TO_ARKIT``:

    ========  ============  ===================================================================
    emotion   action units  ARKit blendshapes (weight)
    ========  ============  ===================================================================
    angry     4 5 7 23      browDown 1.0, eyeWide 0.3, eyeSquint 0.5, mouthPress 0.6
    disgust   9 15 16       noseSneer 1.0, mouthFrown 0.5, mouthLowerDown 0.4, mouthUpperUp 0.5
    fear      1 2 4 5 20 26 browInnerUp 1.0, browOuterUp 0.5, browDown 0.3, eyeWide 0.8,
                            mouthStretch 0.6, jawOpen 0.3
    happy     6 12          cheekSquint 0.7, mouthSmile 1.0, eyeSquint 0.3
    sad       1 4 15        browInnerUp 0.8, browDown 0.3, mouthFrown 0.8, mouthShrugLower 0.3
    surprise  1 2 5 26      browInnerUp 1.0, browOuterUp 1.0, eyeWide 0.8, jawOpen 0.6
    neutral   —             —
    ========  ============  ===================================================================

    ``_L`` / ``_R`` pairs get the same weight; a blendshape's prior is Σ_emotion p · weight, clipped to [0, 1].

Geometric prior (no classifier)
    From 68 landmarks in the face's own frame (eye line horizontal), three scale-free measures, each minus
    its value on the model's own neutral mean face:
    ``mouth_open`` (inner-lip gap / nose length), ``brow_raise`` (brow–eye gap / nose length) and
    ``lip_pull_left/right`` (corner elevation above the lip centre / nose length). They map to SFM
    happiness (lip pull) and surprise (brow raise, mouth opening), or to ICT ``mouthSmile_*``,
    ``browInnerUp_*``/``browOuterUp_*`` and ``jawOpen``. The gains (``GEOMETRY_GAINS``: the change that
    gives weight 1) and dead zones are hand-set, a coarse prior, not a calibrated regression.
"""

from __future__ import annotations

import numpy as np

from fds.facemodel import FaceModel
from fds.proxy.emotion import EMOTIONS

__all__ = ["EMOTION_TO_ARKIT", "emotion_prior", "geometric_measures", "geometric_prior", "expression_prior"]

SFM_EMOTION_SHAPES = {
    "angry": "anger",
    "disgust": "disgust",
    "fear": "fear",
    "happy": "happiness",
    "sad": "sadness",
    "surprise": "surprise",
}

EMOTION_TO_ARKIT: dict[str, dict[str, float]] = {
    "angry": {"browDown": 1.0, "eyeWide": 0.3, "eyeSquint": 0.5, "mouthPress": 0.6},
    "disgust": {"noseSneer": 1.0, "mouthFrown": 0.5, "mouthLowerDown": 0.4, "mouthUpperUp": 0.5},
    "fear": {
        "browInnerUp": 1.0,
        "browOuterUp": 0.5,
        "browDown": 0.3,
        "eyeWide": 0.8,
        "mouthStretch": 0.6,
        "jawOpen": 0.3,
    },
    "happy": {"cheekSquint": 0.7, "mouthSmile": 1.0, "eyeSquint": 0.3},
    "sad": {"browInnerUp": 0.8, "browDown": 0.3, "mouthFrown": 0.8, "mouthShrugLower": 0.3},
    "surprise": {"browInnerUp": 1.0, "browOuterUp": 1.0, "eyeWide": 0.8, "jawOpen": 0.6},
    "neutral": {},
}

# Change of each measure (in nose lengths) that maps to a blendshape weight of 1.
GEOMETRY_GAINS = {"mouth_open": 0.6, "brow_raise": 0.3, "lip_pull": 0.25}
# Changes below these are ignored: brow height varies with pitch and between people more than the rest.
GEOMETRY_DEADZONE = {"mouth_open": 0.0, "brow_raise": 0.12, "lip_pull": 0.02}


def _names_index(fm: FaceModel) -> dict[str, int]:
    return {n: i for i, n in enumerate(fm.expr_names)}


def _add(coeffs: np.ndarray, index: dict[str, int], base: str, value: float) -> None:
    """Add ``value`` to blendshape ``base`` and to both of its ``_L``/``_R`` variants when they exist."""
    for name in (base, f"{base}_L", f"{base}_R"):
        if name in index:
            coeffs[index[name]] += value


def emotion_prior(fm: FaceModel, probs: dict[str, float], strength: float = 1.0) -> np.ndarray:
    """FER probabilities (``EMOTIONS`` keys) → expression coefficients ``float32 [E]`` of ``fm``."""
    unknown = set(probs) - set(EMOTIONS)
    if unknown:
        raise ValueError(f"unknown emotion names {sorted(unknown)}; expected a subset of {EMOTIONS}")
    coeffs = np.zeros(fm.num_expression, np.float32)
    index = _names_index(fm)
    if fm.expr_kind != "blendshapes":
        raise ValueError(f"face model {fm.name!r} has PCA expressions: the emotion prior needs blendshapes")
    if set(SFM_EMOTION_SHAPES.values()) <= set(index):
        for emo, shape in SFM_EMOTION_SHAPES.items():
            coeffs[index[shape]] = probs.get(emo, 0.0)
    else:
        for emo, table in EMOTION_TO_ARKIT.items():
            for base, w in table.items():
                _add(coeffs, index, base, probs.get(emo, 0.0) * w)
        if not coeffs.any() and any(probs.get(e, 0) > 0 for e in EMOTION_TO_ARKIT if EMOTION_TO_ARKIT[e]):
            raise ValueError(f"face model {fm.name!r} has neither SFM emotion nor ARKit blendshape names")
    return np.clip(coeffs * strength, 0.0, 1.0).astype(np.float32)


def geometric_measures(landmarks: np.ndarray, y_up: bool = False) -> dict[str, float]:
    """Scale-free expression measures of 68 iBUG points (module docstring), in nose lengths.

    ``landmarks [68, 2]``: image pixels (y down) by default, or model coordinates with ``y_up=True``.
    """
    p = np.asarray(landmarks, np.float64)[:, :2].copy()
    if y_up:
        p[:, 1] = -p[:, 1]  # work y-down throughout
    eye_r, eye_l = p[36:42].mean(0), p[42:48].mean(0)  # subject's right eye is on the image left
    d = eye_l - eye_r
    c, s = d / np.linalg.norm(d)
    q = (p - p[27]) @ np.array([[c, -s], [s, c]])  # rotate so the eye line is horizontal, origin at nasion
    nose = np.linalg.norm(q[33] - q[27])
    lip_centre_y = (q[51, 1] + q[57, 1] + q[62, 1] + q[66, 1]) / 4
    brow = ((q[36:42, 1].mean() - q[17:22, 1].mean()) + (q[42:48, 1].mean() - q[22:27, 1].mean())) / 2
    return {
        "mouth_open": float((q[66, 1] - q[62, 1]) / nose),
        "brow_raise": float(brow / nose),
        "lip_pull_right": float((lip_centre_y - q[48, 1]) / nose),  # subject's right corner (image left)
        "lip_pull_left": float((lip_centre_y - q[54, 1]) / nose),
    }


_USED_POINTS = [*range(17, 28), 33, *range(36, 49), 51, 54, 57, 62, 66]


def _neutral_measures(fm: FaceModel) -> dict[str, float]:
    """The measures on the model's neutral mean face (every point they use must be a mapped vertex)."""
    idx = fm.landmarks_ibug68
    if (idx[_USED_POINTS] < 0).any():
        raise ValueError(f"face model {fm.name!r} lacks a vertex for some iBUG points the geometric prior uses")
    return geometric_measures(fm.mean_mm[np.maximum(idx, 0), :2], y_up=True)


def geometric_prior(fm: FaceModel, landmarks_px: np.ndarray) -> np.ndarray:
    """Expression coefficients ``float32 [E]`` from landmark geometry alone (module docstring)."""
    m = geometric_measures(landmarks_px)
    ref = _neutral_measures(fm)
    g = GEOMETRY_GAINS
    dz = GEOMETRY_DEADZONE

    def weight(measure: str, key: str) -> float:
        return float(np.clip((m[measure] - ref[measure] - dz[key]) / g[key], 0, 1))

    open_w, brow_w = weight("mouth_open", "mouth_open"), weight("brow_raise", "brow_raise")
    pull = {side: weight(f"lip_pull_{side}", "lip_pull") for side in ("left", "right")}
    coeffs = np.zeros(fm.num_expression, np.float32)
    index = _names_index(fm)
    if "happiness" in index and "surprise" in index:
        coeffs[index["happiness"]] = (pull["left"] + pull["right"]) / 2
        coeffs[index["surprise"]] = min(brow_w, 0.5 + 0.5 * open_w) if brow_w > 0 else 0.0
    else:
        _add(coeffs, index, "jawOpen", open_w)
        _add(coeffs, index, "browInnerUp", brow_w)
        _add(coeffs, index, "browOuterUp", brow_w)
        for side, suffix in (("left", "_L"), ("right", "_R")):
            if f"mouthSmile{suffix}" in index:
                coeffs[index[f"mouthSmile{suffix}"]] = pull[side]
    return np.clip(coeffs, 0, 1).astype(np.float32)


def expression_prior(
    fm: FaceModel,
    source: str,
    emotion_probs: dict[str, float] | None = None,
    landmarks_px: np.ndarray | None = None,
    strength: float = 1.0,
) -> np.ndarray:
    """Prior coefficients from ``source``: ``"emotion"``, ``"geometry"`` or ``"both"`` (element-wise max)."""
    if source not in ("emotion", "geometry", "both"):
        raise ValueError(f"source must be 'emotion', 'geometry' or 'both', got {source!r}")
    parts = []
    if source in ("emotion", "both"):
        if emotion_probs is None:
            raise ValueError(f"source {source!r} needs emotion_probs (from fds.proxy.emotion)")
        parts.append(emotion_prior(fm, emotion_probs, strength))
    if source in ("geometry", "both"):
        if landmarks_px is None:
            raise ValueError(f"source {source!r} needs landmarks_px")
        parts.append(geometric_prior(fm, landmarks_px))
    return np.max(parts, axis=0).astype(np.float32)
