"""fds.proxy — photo → landmarks → expression prior → eos fit → visibility-aware UV texture (ProxyStage)."""

from fds.proxy.emotion import EMOTIONS, EmotionClassifier
from fds.proxy.expression_prior import emotion_prior, expression_prior, geometric_prior
from fds.proxy.fit import FitConfig, FitResult, fit_proxy, project_px
from fds.proxy.landmarks import (
    DetectedFace,
    FaceDetector,
    ImageReadError,
    NoFaceError,
    load_image,
    nme,
    read_pts,
    write_pts,
)
from fds.proxy.stage import ProxyConfig, ProxyResult, ProxyStage, RunSummary, run_folder
from fds.proxy.unwrap import UnwrapConfig, UnwrapResult, UVTexture, unwrap_texture

__all__ = [
    "EMOTIONS",
    "DetectedFace",
    "EmotionClassifier",
    "FaceDetector",
    "FitConfig",
    "FitResult",
    "ImageReadError",
    "NoFaceError",
    "ProxyConfig",
    "ProxyResult",
    "ProxyStage",
    "RunSummary",
    "UVTexture",
    "UnwrapConfig",
    "UnwrapResult",
    "emotion_prior",
    "expression_prior",
    "fit_proxy",
    "geometric_prior",
    "load_image",
    "nme",
    "project_px",
    "read_pts",
    "run_folder",
    "unwrap_texture",
    "write_pts",
]
