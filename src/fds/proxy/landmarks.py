"""Photo loading, dlib face detection and iBUG-68 landmarks.

Coordinates everywhere in this module are 0-based pixel centres of the (EXIF-upright) image:
x = column, y = row, y pointing down. ``.pts`` files use the 300-W 1-based convention and are converted
on read/write.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from fds.fileio import atomic_write_bytes

__all__ = [
    "DetectedFace",
    "FaceDetector",
    "ImageReadError",
    "NoFaceError",
    "dlib_model_path",
    "load_image",
    "read_pts",
    "write_pts",
    "nme",
]

N_LANDMARKS = 68
# dlib's HOG detector scans an 80×80 px window and mmod a ~80 px one; with the one 2× upsampling the detector tries,
# no face narrower than about 40 px is ever found (and the mmod network fails inside dlib on images of a few px)
SMALLEST_DETECTABLE_FACE_PX = 40
# Outer eye corners (iBUG 37 and 46, 0-based 36 and 45): the NME normaliser of 300-W.
OUTER_EYE_CORNERS = (36, 45)


class ImageReadError(ValueError):
    """The file is not a readable image (missing, corrupt, truncated or not an image at all)."""


class NoFaceError(RuntimeError):
    """No usable face was found in the image (none detected, or all smaller than the minimum size)."""


# --------------------------------------------------------------------------------------------- images
HARD_SUFFIXES = (".heic", ".heif", ".avif", ".jxl", ".dng")  # photo formats Pillow may not read without plugins


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Read a photo as ``uint8 [H, W, 3]`` RGB, upright according to its EXIF orientation.

    Greyscale is replicated to 3 channels, palettes are expanded, alpha is composited onto white, 16-bit
    and 32-bit integer images are scaled to 8 bit (full range of the type), float images are clipped to
    [0, 1]. Raises ``ImageReadError`` (naming the file) for anything Pillow cannot decode completely.
    """
    path = Path(path)
    try:
        with Image.open(path) as im:
            if getattr(im, "is_animated", False) and im.format != "MPO":  # MPO: a camera JPEG with extra views
                raise ImageReadError(f"{path}: an animated or multi-page {im.format} ({im.n_frames} frames): give "
                                     "one still photo")
            im.load()  # decode now so truncated files fail here, not later
            im = ImageOps.exif_transpose(im)
            return _to_rgb_uint8(im)
    except ImageReadError:
        raise
    except FileNotFoundError as e:
        raise ImageReadError(f"{path}: file not found") from e
    except IsADirectoryError as e:
        raise ImageReadError(f"{path}: a folder, not a photo") from e
    except PermissionError as e:
        raise ImageReadError(f"{path}: cannot read the file (permission denied)") from e
    except UnidentifiedImageError as e:
        hint = "; convert HEIC/HEIF/AVIF photos to JPEG or PNG" if path.suffix.lower() in HARD_SUFFIXES else ""
        raise ImageReadError(f"{path}: not an identifiable image (corrupt, or not an image file{hint})") from e
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise ImageReadError(f"{path}: cannot decode image ({e})") from e


def _to_rgb_uint8(im: Image.Image) -> np.ndarray:
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        a = np.asarray(im).astype(np.float64)  # [H, W]
        scale = 257.0 if mode.startswith("I;16") or a.max(initial=0) <= 65535 else 16843009.0
        g = np.clip(np.rint(a / scale), 0, 255).astype(np.uint8)
        return np.repeat(g[:, :, None], 3, axis=2)
    if mode == "F":
        a = np.clip(np.asarray(im, dtype=np.float64), 0.0, 1.0)
        g = np.rint(a * 255).astype(np.uint8)
        return np.repeat(g[:, :, None], 3, axis=2)
    if mode == "P":
        im = im.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.ascontiguousarray(np.asarray(Image.alpha_composite(background, rgba).convert("RGB")))
    return np.ascontiguousarray(np.asarray(im.convert("RGB")))


def resize_longest(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """Downscale ``image`` so its longest side is at most ``max_side``; returns (image, scale ≤ 1).

    A point (x, y) in the small image is (x + 0.5) / scale − 0.5 in the original (pixel-centre mapping).
    """
    h, w = image.shape[:2]
    if max(h, w) <= max_side:
        return image, 1.0
    scale = max_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0))
    return small, size[0] / w


# ------------------------------------------------------------------------------------------ .pts files
def read_pts(path: str | os.PathLike) -> np.ndarray:
    """Read a 300-W ``.pts`` file → ``float32 [N, 2]`` 0-based pixel coordinates (x = col, y = row)."""
    path = Path(path)
    lines = [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]
    try:
        start = lines.index("{") + 1
        end = lines.index("}")
    except ValueError as e:
        raise ValueError(f"{path}: not a .pts file (missing '{{' or '}}')") from e
    pts = np.array([[float(v) for v in ln.split()[:2]] for ln in lines[start:end]], dtype=np.float32)
    for ln in lines[:start]:
        if ln.startswith("n_points") and int(ln.split(":")[1]) != len(pts):
            raise ValueError(f"{path}: header says {ln!r} but {len(pts)} points follow")
    return pts - 1.0


def write_pts(path: str | os.PathLike, points_px: np.ndarray) -> None:
    """Write 0-based pixel points ``[N, 2]`` as a 300-W ``.pts`` file (1-based), atomically."""
    points_px = np.asarray(points_px, dtype=np.float64)
    if points_px.ndim != 2 or points_px.shape[1] != 2:
        raise ValueError(f"points_px must be [N, 2], got shape {points_px.shape}")
    body = "".join(f"{x + 1:.3f} {y + 1:.3f}\n" for x, y in points_px)
    text = f"version: 1\nn_points: {len(points_px)}\n{{\n{body}}}\n"
    atomic_write_bytes(Path(path), [text.encode()])


def nme(pred_px: np.ndarray, gt_px: np.ndarray) -> float:
    """Normalised mean error: mean point distance / distance of the outer eye corners (iBUG 37, 46)."""
    pred_px, gt_px = np.asarray(pred_px, np.float64), np.asarray(gt_px, np.float64)
    d = np.linalg.norm(gt_px[OUTER_EYE_CORNERS[0]] - gt_px[OUTER_EYE_CORNERS[1]])
    return float(np.linalg.norm(pred_px - gt_px, axis=1).mean() / d)


# ------------------------------------------------------------------------------------------ detection
def dlib_model_path(filename: str) -> Path:
    """Path of a model file shipped by the ``face-recognition-models`` package (without importing it)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "package 'face-recognition-models' is not installed; `pip install face-recognition-models` "
            "provides the dlib landmark and detector models"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / filename
    if not path.is_file():
        raise FileNotFoundError(f"dlib model {filename!r} missing at {path}; reinstall face-recognition-models")
    return path


@dataclass(frozen=True)
class DetectedFace:
    """One face: detector box and 68 landmarks, in 0-based pixels of the full image (y down)."""

    box_px: np.ndarray  # float32 [4] (x0, y0, x1, y1)
    landmarks_px: np.ndarray  # float32 [68, 2] (x = col, y = row)
    score: float  # detector confidence (HOG: SVM margin, CNN: mmod score)
    detector: str  # "hog0", "hog1" (upsample count) or "cnn"

    @property
    def width_px(self) -> float:
        return float(self.box_px[2] - self.box_px[0])


class FaceDetector:
    """dlib detector + 68-point shape predictor, built lazily (dlib objects do not pickle).

    ``method``: ``"hog"`` (HOG at upsample 0, then 1), ``"cnn"`` (mmod only) or ``"hog+cnn"`` (HOG, then
    mmod if HOG finds nothing). Detection runs on a copy downscaled to ``detect_max_side`` (HOG) or
    ``cnn_max_side`` (mmod) pixels; landmarks are predicted on the full-resolution image.
    Faces narrower than ``min_face_px`` (full-resolution box width) are dropped.
    """

    def __init__(
        self,
        method: str = "hog+cnn",
        detect_max_side: int = 1024,
        cnn_max_side: int = 512,
        min_face_px: float = 40.0,
    ):
        if method not in ("hog", "cnn", "hog+cnn"):
            raise ValueError(f"method must be 'hog', 'cnn' or 'hog+cnn', got {method!r}")
        self.method = method
        self.detect_max_side = int(detect_max_side)
        self.cnn_max_side = int(cnn_max_side)
        self.min_face_px = float(min_face_px)
        self._hog = self._cnn = self._predictor = None

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_hog"] = state["_cnn"] = state["_predictor"] = None
        return state

    # lazy dlib objects -------------------------------------------------------------------------------
    @property
    def hog(self):
        if self._hog is None:
            import dlib

            self._hog = dlib.get_frontal_face_detector()
        return self._hog

    @property
    def cnn(self):
        if self._cnn is None:
            import dlib

            self._cnn = dlib.cnn_face_detection_model_v1(str(dlib_model_path("mmod_human_face_detector.dat")))
        return self._cnn

    @property
    def predictor(self):
        if self._predictor is None:
            import dlib

            path = dlib_model_path("shape_predictor_68_face_landmarks.dat")
            self._predictor = dlib.shape_predictor(str(path))
        return self._predictor

    # detection -----------------------------------------------------------------------------------------
    def detect_boxes(self, image: np.ndarray) -> list[tuple[np.ndarray, float, str]]:
        """Face boxes ``(float32 [4] x0,y0,x1,y1 full-res px, score, detector)``; may be empty. A photo whose
        shorter side cannot hold a face the detector finds raises ``NoFaceError`` saying so."""
        image = _check_image(image)
        h, w = image.shape[:2]
        smallest = max(self.min_face_px, SMALLEST_DETECTABLE_FACE_PX)
        if min(h, w) < smallest:
            raise NoFaceError(f"photo is {w}×{h} px: too small to hold a face (the detector finds faces of at "
                              f"least {smallest:.0f} px); give a larger photo")
        boxes: list[tuple[np.ndarray, float, str]] = []
        if self.method in ("hog", "hog+cnn"):
            small, s = resize_longest(image, self.detect_max_side)
            for upsample in (0, 1):
                rects, scores, _ = self.hog.run(small, upsample, 0.0)
                pairs = zip(rects, scores, strict=True)
                boxes = [(_rect_to_box(r, s), float(sc), f"hog{upsample}") for r, sc in pairs]
                if boxes:
                    break
        if not boxes and self.method in ("cnn", "hog+cnn"):
            small, s = resize_longest(image, self.cnn_max_side)
            for upsample in (0, 1):
                dets = self.cnn(small, upsample)
                boxes = [(_rect_to_box(d.rect, s), float(d.confidence), "cnn") for d in dets]
                if boxes:
                    break
        return boxes

    def landmarks(self, image: np.ndarray, box_px: np.ndarray) -> np.ndarray:
        """68 landmarks ``float32 [68, 2]`` (0-based px) for a face box in full-resolution pixels."""
        import dlib

        image = _check_image(image)
        x0, y0, x1, y1 = (int(round(v)) for v in box_px)
        shape = self.predictor(image, dlib.rectangle(x0, y0, x1 - 1, y1 - 1))
        return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32)

    def select(self, boxes: list[tuple[np.ndarray, float, str]], all_faces: bool = False) -> list:
        """Drop faces under ``min_face_px``, sort largest first, keep the largest unless ``all_faces``.

        Raises ``NoFaceError`` when nothing is left (with "no face detected" or "face too small").
        """
        if not boxes:
            raise NoFaceError(f"no face detected (detector {self.method})")
        big = [b for b in boxes if b[0][2] - b[0][0] >= self.min_face_px]
        if not big:
            widest = max(b[0][2] - b[0][0] for b in boxes)
            raise NoFaceError(f"face too small: widest box {widest:.0f} px < min_face_px {self.min_face_px:.0f}")
        big.sort(key=lambda b: -float((b[0][2] - b[0][0]) * (b[0][3] - b[0][1])))
        return big if all_faces else big[:1]

    def __call__(self, image: np.ndarray, all_faces: bool = False) -> list[DetectedFace]:
        """Detect faces and their landmarks, largest first; only the largest unless ``all_faces``.

        Raises ``NoFaceError`` when nothing is found or every face is smaller than ``min_face_px``.
        """
        image = _check_image(image)
        big = self.select(self.detect_boxes(image), all_faces)
        return [DetectedFace(box, self.landmarks(image, box), score, det) for box, score, det in big]


def _check_image(image: np.ndarray) -> np.ndarray:
    ok = isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    if not ok:
        got = f"{type(image).__name__} {getattr(image, 'dtype', '')} {getattr(image, 'shape', '')}"
        raise ValueError(f"image must be uint8 [H, W, 3] RGB (use load_image), got {got}")
    return np.ascontiguousarray(image)


def _rect_to_box(rect, scale: float) -> np.ndarray:
    """dlib rectangle in a image scaled by ``scale`` → float32 [4] box in full-resolution pixels."""
    box = np.array([rect.left(), rect.top(), rect.right() + 1, rect.bottom() + 1], dtype=np.float64)
    return (box / scale).astype(np.float32)
