"""Real photo backgrounds for rendered faces: crops of photos that hold no face.

Sources, in a fixed sorted order so a seed always draws the same crop:

- the face-free images that ship with scikit-image (brick, coffee, coins, grass, rocket, …) and matplotlib;
- photos under ``photo_dirs`` (e.g. ``../shared/data/faces/wild``) *away from their faces*: dlib's HOG detector
  finds the faces once (cached as ``<cache_dir>/background_faces_<key>.json``), and a crop may not touch a face
  box widened by 60 % sideways and upwards and extended to the bottom of the photo (hair, shoulders, body).

A crop is resized to the photo size; sRGB ``uint8`` in, float32 [0, 1] out.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

log = logging.getLogger(__name__)

#: scikit-image sample images without people (file names inside ``skimage/data``).
SKIMAGE_SCENES = ("brick.png", "cell.png", "chelsea.png", "clock_motion.png", "coffee.png", "coins.png",
                  "grass.png", "gravel.png", "horse.png", "hubble_deep_field.jpg", "ihc.png", "moon.png",
                  "motorcycle_left.png", "page.png", "rocket.jpg", "text.png")


def library_scenes() -> list[Path]:
    """Face-free sample images shipped inside scikit-image and matplotlib (those present)."""
    out: list[Path] = []
    try:
        import skimage

        root = Path(skimage.__file__).parent / "data"
        out += [root / n for n in SKIMAGE_SCENES if (root / n).is_file()]
    except ImportError:
        pass
    try:
        import matplotlib

        p = Path(matplotlib.get_data_path()) / "sample_data" / "Minduka_Present_Blue_Pack.png"
        if p.is_file():
            out.append(p)
    except ImportError:
        pass
    return out


def _load_rgb(path: Path) -> np.ndarray:
    from fds.proxy.landmarks import load_image

    return load_image(path)


class BackgroundBank:
    """Face-free crops of real photos (see module doc); picklable, images read on demand."""

    def __init__(self, photo_dirs: Sequence[str | os.PathLike] = (), cache_dir: str | os.PathLike | None = None,
                 include_library: bool = True, max_photos: int | None = 40) -> None:
        from fds.data.skin import find_photos

        photos = find_photos(photo_dirs)
        if max_photos is not None and len(photos) > max_photos:
            photos = [photos[i] for i in np.linspace(0, len(photos) - 1, int(max_photos)).astype(int)]
        self.photos = [str(p) for p in photos]
        self.scenes = [str(p) for p in library_scenes()] if include_library else []
        self.cache_dir = cache_dir
        self._faces: dict[str, list[list[float]] | None] | None = None

    def __len__(self) -> int:
        return len(self.photos) + len(self.scenes)

    @property
    def faces(self) -> dict[str, list[list[float]] | None]:
        """Face boxes (x0, y0, x1, y1 px) of every photo, computed once and cached on disk."""
        if self._faces is None:
            self._faces = self._load_or_detect()
        return self._faces

    def _load_or_detect(self) -> dict[str, list[list[float]] | None]:
        if not self.photos:
            return {}
        key = hashlib.sha1("|".join(self.photos).encode()).hexdigest()[:12]
        path = Path(self.cache_dir) / f"background_faces_{key}.json" if self.cache_dir else None
        if path is not None and path.is_file():
            return json.loads(path.read_text())
        from fds.proxy.landmarks import FaceDetector

        det = FaceDetector(method="hog")
        faces: dict[str, list[list[float]] | None] = {}
        for p in self.photos:
            try:
                faces[p] = [b[0].tolist() for b in det.detect_boxes(_load_rgb(Path(p)))]
            except Exception as exc:  # unreadable photo: never used as a background
                log.warning("backgrounds: skipped %s (%s)", p, exc)
                faces[p] = None
        if path is not None:
            from fds.fileio import atomic_write_bytes

            atomic_write_bytes(path, [json.dumps(faces).encode()])
        return faces

    def sample(self, rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, dict]:
        """A background ``float32 [H, W, 3]`` in [0, 1] (sRGB) and where it came from."""
        if len(self) == 0:
            grey = np.full((height, width, 3), rng.uniform(0.2, 0.8), np.float32)
            return grey, {"source": "flat"}
        for _ in range(8):
            k = int(rng.integers(len(self)))
            if k < len(self.photos):
                path = self.photos[k]
                boxes = self.faces.get(path)
                if boxes is None:
                    continue
                img = _load_rgb(Path(path))
                rect = _free_crop(rng, img.shape[:2], boxes, width / height)
                if rect is None:
                    continue
            else:
                path = self.scenes[k - len(self.photos)]
                img = _load_rgb(Path(path))
                rect = _free_crop(rng, img.shape[:2], [], width / height)
                if rect is None:
                    continue
            x0, y0, x1, y1 = rect
            crop = Image.fromarray(img[y0:y1, x0:x1]).resize((width, height), Image.Resampling.BILINEAR)
            out = np.asarray(crop, np.float32) / 255
            if rng.random() < 0.5:
                out = out[:, ::-1]
            return np.ascontiguousarray(out), {"source": Path(path).name, "crop": [int(v) for v in rect]}
        grey = np.full((height, width, 3), rng.uniform(0.2, 0.8), np.float32)
        return grey, {"source": "flat"}


def _free_crop(rng: np.random.Generator, shape: tuple[int, int], boxes: list, aspect: float,
               tries: int = 30, min_side: int = 48) -> tuple[int, int, int, int] | None:
    """A crop rectangle (x0, y0, x1, y1) of aspect ``aspect`` (w/h) that touches no widened face box."""
    h, w = shape
    banned = []
    for x0, y0, x1, y1 in boxes:
        bw, bh = x1 - x0, y1 - y0
        banned.append((x0 - 0.6 * bw, y0 - 0.6 * bh, x1 + 0.6 * bw, h))
    for _ in range(tries):
        ch = rng.uniform(0.3, 1.0) * min(h, w / aspect)
        cw = ch * aspect
        if ch < min_side or cw < min_side or cw > w or ch > h:
            continue
        x0, y0 = rng.uniform(0, w - cw), rng.uniform(0, h - ch)
        x1, y1 = x0 + cw, y0 + ch
        if all(x1 <= a or x0 >= c or y1 <= b or y0 >= d for a, b, c, d in banned):
            return int(x0), int(y0), int(np.ceil(x1)), int(np.ceil(y1))
    return None
