"""Detail prediction: a checkpoint's networks turn a proxy's UV texture into a UV displacement map (mm)."""

from fds.detail.predictor import (
    DetailMap,
    DetailPredictor,
    FaceModelMismatch,
    FitRequired,
    SettingRefused,
    check_face_model,
    seen_weight,
)

__all__ = ["DetailMap", "DetailPredictor", "FaceModelMismatch", "FitRequired", "SettingRefused", "check_face_model",
           "seen_weight"]
