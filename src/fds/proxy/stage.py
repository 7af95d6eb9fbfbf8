"""``ProxyStage``: photo → landmarks → expression prior → eos fit → UV texture, cached per image.

Cache: one entry per photo content and proxy config (:mod:`fds.proxy.cache`: full precision, checksummed,
complete or absent; a corrupt or stale entry is logged, recomputed and replaced). Failed images are not cached
(they are retried).

``run_folder`` processes a folder with a torch DataLoader (each worker builds dlib/eos/torch objects lazily),
shows a tqdm bar and returns a :class:`RunSummary` (successes, failures with reasons, mean stage times).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from fds.memory import release_free_memory
from fds.proxy.cache import CACHE_VERSION, CacheEntryError, load_result, read_entry, save_result, write_entry
from fds.proxy.fit import FitConfig, FitResult, fit_proxy
from fds.proxy.landmarks import FaceDetector, ImageReadError, NoFaceError, load_image
from fds.proxy.unwrap import UnwrapConfig, UnwrapResult, unwrap_texture
from fds.threads import torch_threads

__all__ = ["FittedFace", "ProxyConfig", "ProxyResult", "ProxyStage", "RunSummary", "run_folder", "IMAGE_SUFFIXES"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
log = logging.getLogger(__name__)
TORCH_THREADS = 1  # torch intra-op threads of the proxy stage (see ProxyStage.process)


@dataclass(frozen=True)
class ProxyConfig:
    """Everything that changes a proxy; its hash keys the cache (see ``configs/proxy/default.yaml``)."""

    face_model: str = "sfm"
    all_faces: bool = False
    detector: dict = field(
        default_factory=lambda: {"method": "hog+cnn", "detect_max_side": 1024, "cnn_max_side": 512, "min_face_px": 40.0}
    )
    expression: dict = field(default_factory=lambda: {"mode": "init", "source": "emotion", "strength": 1.0})
    fit: FitConfig = FitConfig()
    unwrap: UnwrapConfig = UnwrapConfig()

    @classmethod
    def from_dict(cls, d: dict | None) -> ProxyConfig:
        d = dict(d or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown proxy config keys {sorted(unknown)}; known: {sorted(known)}")
        base = cls()
        fit = dict(d.pop("fit", {}) or {})
        if "expression_bounds" in fit:
            fit["expression_bounds"] = tuple(fit["expression_bounds"])
        return cls(
            face_model=d.get("face_model", base.face_model),
            all_faces=bool(d.get("all_faces", base.all_faces)),
            detector={**base.detector, **dict(d.get("detector", {}) or {})},
            expression={**base.expression, **dict(d.get("expression", {}) or {})},
            fit=FitConfig(**fit),
            unwrap=UnwrapConfig(**dict(d.get("unwrap", {}) or {})),
        )

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def digest(self) -> str:
        return hashlib.sha1(json.dumps(self.to_dict(), sort_keys=True, default=str).encode()).hexdigest()


@dataclass
class ProxyResult:
    """One face of one photo through the proxy stage: what was detected, the fit and the unwrap.

    Pixels are 0-based, x = column, y = row DOWN. The fitted mesh, camera and errors are ``fit``'s
    (:class:`~fds.proxy.fit.FitResult`: ``fit.vertices_mm``, ``fit.project(points)``, ``fit.image_size`` …); the
    photo in UV space is ``uv``'s (:class:`~fds.proxy.unwrap.UnwrapResult`: ``uv.texture``, ``uv.confidence`` …).
    """

    image_path: str
    image_sha1: str
    face_index: int  # 0 = largest face
    box_px: np.ndarray  # float32 [4] detector box (x0, y0, x1, y1)
    detector: str  # "hog0" | "hog1" | "cnn"
    landmarks_px: np.ndarray  # float32 [68, 2] iBUG-68
    emotion_probs: dict[str, float] | None  # FER2013 class → probability (None without the classifier)
    expression_mode: str  # "none" | "init" | "fix"
    prior_expr: np.ndarray  # float32 [E] prior expression coefficients (zeros in mode "none")
    face_model: str  # "sfm" | "ict" | ...
    fit: FitResult  # proxy mesh (model frame, mm), coefficients, camera, landmark errors
    uv: UnwrapResult  # the photo in UV space: texture, visibility, confidence
    timings_s: dict[str, float] = field(default_factory=dict)  # detect, landmarks, emotion, fit, unwrap
    # the detector's confidence in the face (HOG: SVM margin, cnn: mmod score; fds.proxy.quality warns on it);
    # None for proxies stored before fds kept it (photo-scan samples of cache format 2)
    detector_score: float | None = None

    def save(self, folder: Path) -> None:
        """Write ``face<k>.npz`` / ``face<k>.json`` into ``folder`` (:func:`fds.proxy.cache.save_result`)."""
        save_result(self, folder)

    @classmethod
    def load(cls, folder: Path, face_index: int = 0, image_path: str = "") -> ProxyResult:
        """Face ``face_index`` of a cache entry (:func:`fds.proxy.cache.load_result`)."""
        return load_result(folder, cls, face_index, image_path)


@dataclass
class FittedFace:
    """:meth:`ProxyStage.fit_face`'s result: one face's landmarks (0-based px, y down), emotion, prior and fit."""

    landmarks_px: np.ndarray  # float32 [68, 2] iBUG-68
    emotion_probs: dict[str, float] | None
    prior_expr: np.ndarray  # float32 [E]
    fit: FitResult
    timings_s: dict[str, float]  # landmarks, emotion, fit


def file_sha1(path: Path) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class ProxyStage:
    """Photo → ``list[ProxyResult]`` (largest face only unless ``config.all_faces``); picklable, lazy."""

    def __init__(
        self,
        config: ProxyConfig | dict | None = None,
        cache_dir: str | os.PathLike | None = None,
        device: str = "cpu",
        assets_dir: str | os.PathLike | None = None,
    ):
        self.config = config if isinstance(config, ProxyConfig) else ProxyConfig.from_dict(config)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.device = device
        self.assets_dir = assets_dir
        self.detector = FaceDetector(**self.config.detector)
        self._fm = None
        self._classifier = None

    @property
    def face_model(self):
        if self._fm is None:
            from fds.facemodel import load_face_model

            self._fm = load_face_model(self.config.face_model, self.assets_dir)
        return self._fm

    @property
    def classifier(self):
        if self._classifier is None:
            from fds.proxy.emotion import EmotionClassifier

            self._classifier = EmotionClassifier(device=self.device)
        return self._classifier

    def cache_key(self, image_sha1: str) -> str:
        model_part = f"{self.config.face_model}:{self.face_model.fingerprint()}:{CACHE_VERSION}"
        cfg = hashlib.sha1((self.config.digest() + model_part).encode()).hexdigest()
        return f"{image_sha1[:16]}-{cfg[:12]}"

    # ---------------------------------------------------------------------------------------------------
    def __call__(self, image_path: str | os.PathLike) -> list[ProxyResult]:
        """Results for one photo, from the cache when present. Raises ImageReadError / NoFaceError."""
        path = Path(image_path)
        if not path.is_file():
            why = ("a folder, not a photo" if path.is_dir() else
                   f"dangling symlink to {os.readlink(path)}" if path.is_symlink() else "file not found")
            raise ImageReadError(f"{path}: {why}")
        sha = file_sha1(path)
        folder = self.cache_dir / self.cache_key(sha) if self.cache_dir is not None else None
        if folder is not None:
            try:
                cached = read_entry(folder, sha, str(path), ProxyResult)
            except CacheEntryError as exc:
                log.warning("proxy cache entry %s is unusable (%s): recomputing it", folder, exc)
                cached = None
            if cached is not None:
                return cached
        results = self.process(load_image(path), str(path), sha)
        if folder is not None:
            try:
                write_entry(folder, results, sha)
            except OSError as exc:  # the results are good; only the cache could not keep them
                log.warning("could not cache the proxy of %s in %s: %s", path, folder, exc)
        return results

    def process(self, image: np.ndarray, image_path: str = "", image_sha1: str = "") -> list[ProxyResult]:
        """Run every step on an RGB ``uint8 [H, W, 3]`` image (no caching). torch runs on one thread here: the
        emotion network's float sums depend on the thread count, and the fit amplifies the last bit of its
        probabilities into a different proxy, so one thread keeps a photo's proxy the same on every machine and
        in every process (this one, :mod:`fds.proxy.prefetch`'s workers, DataLoader workers)."""
        with torch_threads(TORCH_THREADS):
            return self._process(image, image_path, image_sha1)

    def fit_face(self, image: np.ndarray, box_px: np.ndarray) -> FittedFace:
        """Landmarks, expression prior and fit of one detected face (box in full-resolution px): every step of
        :meth:`process` but the detection and the unwrap (on one torch thread, as there)."""
        from fds.proxy.expression_prior import expression_prior

        fm, cfg = self.face_model, self.config
        with torch_threads(TORCH_THREADS):
            t: dict[str, float] = {}
            t0 = time.perf_counter()
            lm = self.detector.landmarks(image, box_px)
            t["landmarks"] = time.perf_counter() - t0
            mode, source = cfg.expression["mode"], cfg.expression["source"]
            probs = None
            t0 = time.perf_counter()
            if mode != "none" and source in ("emotion", "both"):
                probs = self.classifier(image, lm)
            t["emotion"] = time.perf_counter() - t0
            prior = np.zeros(fm.num_expression, np.float32)
            if mode != "none":
                prior = expression_prior(fm, source, probs, lm, float(cfg.expression.get("strength", 1.0)))
            t0 = time.perf_counter()
            fit = fit_proxy(fm, lm, image.shape[:2], mode, prior, cfg.fit)
            t["fit"] = time.perf_counter() - t0
        return FittedFace(lm, probs, prior, fit, t)

    def _process(self, image: np.ndarray, image_path: str, image_sha1: str) -> list[ProxyResult]:
        fm, cfg = self.face_model, self.config
        t0 = time.perf_counter()
        boxes = self.detector.detect_boxes(image)
        t_detect = time.perf_counter() - t0
        faces = self.detector.select(boxes, all_faces=cfg.all_faces)
        out = []
        for k, (box, score, det) in enumerate(faces):
            face = self.fit_face(image, box)
            t = {"detect": t_detect if k == 0 else 0.0, **face.timings_s}
            release_free_memory()  # detection's and the landmarks' freed buffers, before the unwrap's peak
            t0 = time.perf_counter()
            fit = face.fit
            uv = unwrap_texture(image, fm, fit, cfg.unwrap, device=self.device)
            t["unwrap"] = time.perf_counter() - t0
            out.append(
                ProxyResult(
                    image_path=image_path,
                    image_sha1=image_sha1,
                    face_index=k,
                    box_px=np.asarray(box, np.float32),
                    detector=det,
                    detector_score=float(score),
                    landmarks_px=face.landmarks_px,
                    emotion_probs=face.emotion_probs,
                    expression_mode=cfg.expression["mode"],
                    prior_expr=face.prior_expr,
                    face_model=cfg.face_model,
                    fit=fit,
                    uv=UnwrapResult(uv.texture, uv.visibility, uv.confidence),
                    timings_s=t,
                )
            )
        return out


# ------------------------------------------------------------------------------------------- folder runner
@dataclass
class RunSummary:
    """Outcome of ``run_folder``: what worked, what failed and why, and mean stage times (s)."""

    num_images: int
    succeeded: list[tuple[str, str]]  # (image path, cache folder)
    failed: list[tuple[str, str]]  # (image path, reason)
    mean_timings_s: dict[str, float]
    wall_s: float

    @property
    def ok(self) -> bool:
        return not self.failed

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def format(self) -> str:
        lines = [
            f"{len(self.succeeded)}/{self.num_images} images processed in {self.wall_s:.1f} s "
            f"({self.num_images / max(self.wall_s, 1e-9):.2f} images/s); {len(self.failed)} failed"
        ]
        lines += [f"  FAILED {p}: {r}" for p, r in self.failed]
        return "\n".join(lines)


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Every file under ``folder`` (recursively) that is not an obvious non-image sidecar, sorted."""
    skip = {".pts", ".txt", ".md", ".json", ".csv", ".npz", ".obj", ".mat"}
    return sorted(
        p
        for p in Path(folder).rglob("*")
        if p.is_file() and p.suffix.lower() not in skip and not p.name.startswith(".")
    )


class _ImageDataset(Dataset[dict]):
    """torch Dataset over image paths; item → a small record (the arrays stay in the cache)."""

    def __init__(self, paths: list[Path], stage: ProxyStage):
        self.paths, self.stage = paths, stage

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> dict:
        path = self.paths[i]
        try:
            results = self.stage(path)
            sha = results[0].image_sha1
            timings = {k: sum(r.timings_s.get(k, 0.0) for r in results) for k in results[0].timings_s}
            return {
                "path": str(path),
                "ok": True,
                "cache": str(Path(self.stage.cache_dir or "") / self.stage.cache_key(sha)),
                "timings": timings,
            }
        except (ImageReadError, NoFaceError) as e:
            return {"path": str(path), "ok": False, "reason": f"{type(e).__name__}: {e}"}
        except Exception as e:  # a failure in one image must not stop the run; keep the cause
            return {"path": str(path), "ok": False, "reason": f"{type(e).__name__}: {e}"}


def run_folder(
    input_dir: str | os.PathLike,
    cache_dir: str | os.PathLike,
    config: ProxyConfig | dict | None = None,
    num_workers: int = 0,
    progress: bool = True,
    paths: list[Path] | None = None,
) -> RunSummary:
    """Proxy for every photo in ``input_dir`` (or ``paths``) into ``cache_dir``; never stops on bad input."""
    import torch

    from fds.progress import progress as show_progress

    stage = ProxyStage(config, cache_dir=cache_dir)
    stage.face_model  # noqa: B018  load once in the parent (pickled to workers, eos objects rebuilt lazily)
    paths = list_images(input_dir) if paths is None else list(paths)
    loader: torch.utils.data.DataLoader[dict] = torch.utils.data.DataLoader(
        _ImageDataset(paths, stage), batch_size=None, shuffle=False, num_workers=num_workers, collate_fn=lambda x: x
    )
    ok: list[tuple[str, str]] = []
    bad: list[tuple[str, str]] = []
    sums: dict[str, float] = {}
    t0 = time.perf_counter()
    records = show_progress(loader, "proxy", total=len(paths), unit="photo") if progress else loader
    for rec in records:
        if rec["ok"]:
            ok.append((rec["path"], rec["cache"]))
            for k, v in rec["timings"].items():
                sums[k] = sums.get(k, 0.0) + v
        else:
            bad.append((rec["path"], rec["reason"]))
    wall = time.perf_counter() - t0
    summary = RunSummary(len(paths), ok, bad, {k: v / max(len(ok), 1) for k, v in sums.items()}, wall)
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    (Path(cache_dir) / "summary.json").write_text(json.dumps(summary.to_dict(), indent=1))
    return summary
