"""Photo-level scan samples: a detailed head rendered as a photo, run through the real proxy stage, with the GT
detail ray-cast into the fitted proxy's UV — the network's input exactly as inference sees it.

Per seed (four independent random streams spawned from it: geometry, albedo, marks, photo):

1. the detailed head of ``ProceduralScanGenerator.head`` (identity, expression, age, wrinkles, pores, skin noise;
   albedo from the bank of real unwraps, greyscale sources tinted to a skin tone) with colour-only marks painted
   into the albedo (``fds.data.face_marks``: eyebrows, stubble/beard, moles, forehead hair strands, eyes, lip line);
   with ``skin_pigment``, skin's fine pigment first (``fds.data.skin.skin_pigment``, a fifth stream of its own);
2. the photo (``fds.data.photo_render``);
3. ``fds.proxy.ProxyStage.process`` on the photo — detection, landmarks, expression prior, fit, unwrap, exactly as
   ``infer.py``; the detected face must be the rendered one (its box holds the true nose tip and is 0.4–2.5× the
   true landmarks' width), else the photo is skipped;
4. the GT in the fitted UV (``fds.data.raycast_gt``).

A photo whose detection or fit fails is *skipped* (:class:`SkippedPhoto` with the reason); writers count them.
"""

from __future__ import annotations

import io
import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from fds.data.backgrounds import BackgroundBank
from fds.data.face_marks import FrameToTexel, marks_coverage, paint_face_marks
from fds.data.photo_render import (
    PHOTO_REGIONS,
    PhotoConfig,
    RenderedPhoto,
    cast_shadow_edges,
    photo_region_labels,
    render_photo,
)
from fds.data.procedural import ProceduralScanGenerator
from fds.data.raycast_gt import FittedGT, fitted_gt
from fds.data.sample_io import ScanSample, write_sample
from fds.data.skin import SKIN_PALETTE, skin_pigment
from fds.mesh.meshdata import MeshData
from fds.threads import torch_threads

log = logging.getLogger(__name__)
SAMPLE_PREFIX = "photo_"


class SkippedPhoto(RuntimeError):
    """The proxy stage could not use a rendered photo (no face found, another face found, fit failed)."""


@dataclass
class PhotoSample:
    """One photo-level sample in memory: the scan sample (network input/GT in the fitted UV), the photo with
    its per-pixel GT, the proxy result and the fitted-UV GT details."""

    scan: ScanSample
    photo: RenderedPhoto
    proxy: Any  # fds.proxy.ProxyResult
    gt: FittedGT
    meta: dict = field(default_factory=dict)


def tint_grey_albedo(rng: np.random.Generator, albedo: np.ndarray, covered: np.ndarray) -> tuple[np.ndarray, bool]:
    """Bank albedos unwrapped from greyscale photos (mean chroma < 0.03) get a jittered palette skin tone,
    keeping their brightness pattern; colour albedos are returned unchanged."""
    a = albedo[covered]
    chroma = float(np.mean(a.max(1) - a.min(1)))
    if chroma >= 0.03:
        return albedo, False
    tone = SKIN_PALETTE[int(rng.integers(len(SKIN_PALETTE)))] * rng.uniform(0.92, 1.08, 3)
    lum = albedo.mean(-1, keepdims=True)
    return np.clip(lum / max(float(np.mean(a)), 1e-3) * tone, 0, 1).astype(np.float32), True


class PhotoScanGenerator:
    """Seed → :class:`PhotoSample` (module doc). Picklable; face model, albedo bank, backgrounds, dlib and eos
    objects are built lazily per process, so it runs inside DataLoader workers.

    Args:
        face_model: face model of both the GT head and the proxy (one UV chart).
        resolution: the fitted UV maps' side (unwrap, GT), texels.
        gt_resolution: the GT head's displacement/albedo maps' side.
        age_range, neutral_prob, id_scale: the head (``ProceduralScanGenerator``).
        albedo_dirs, albedo_max_photos, albedo_resolution: the skin-albedo bank.
        background_dirs, background_max_photos: photos whose face-free crops become backgrounds (+ the
            libraries' sample scenes).
        cache_dir: albedo bank and background face boxes; assets_dir: face-model assets.
        proxy: ``fds.proxy.ProxyConfig`` overrides (``unwrap.resolution`` follows ``resolution``).
        photo: :class:`~fds.data.photo_render.PhotoConfig` overrides.
        band_sigma_mm: the GT detail band's low-pass width (``fds.data.raycast_gt``).
        marks: paint the colour-only marks (eyebrows, stubble, moles, strands, eyes, lip line).
        micro_relief_scale: factor on the heads' pore-scale relief (:class:`ProceduralScanGenerator`; 0 = wrinkles
            only, the same draws).
        cheek_creases: the heads carry an ageing cheek's creases (:class:`ProceduralScanGenerator`; off by default,
            the held-out benchmarks' heads).
        skin_pigment: paint real skin's fine pigment texture (melanin mottle, redness, freckles;
            :func:`fds.data.skin.skin_pigment`) into the albedo before the marks, from a random stream of its own
            (every other draw of a seed stays); off by default, the held-out benchmarks' heads.
        threads: torch intra-op threads while a sample is generated (restored after); ``None`` keeps torch's
            setting. Default 1: parallelism comes from DataLoader workers (which run with 1 thread anyway), so
            a sample is the same bit for bit whatever ``workers`` is — the emotion CNN's float sums depend on
            the thread count and the eos fit amplifies that to ≈ 0.06 mm — and several threads per process
            stall on a loaded machine (one sample took 4× longer with 2 threads than with 1 on 2 shared cores).
    """

    def __init__(self, face_model: str = "sfm", resolution: int = 1024, gt_resolution: int = 1024,
                 age_range: tuple[float, float] = (0.0, 1.0), neutral_prob: float = 0.3, id_scale: float = 0.8,
                 albedo_dirs: Sequence[str | os.PathLike] = (), albedo_max_photos: int = 16,
                 albedo_resolution: int = 256, background_dirs: Sequence[str | os.PathLike] = (),
                 background_max_photos: int | None = 40, cache_dir: str | os.PathLike | None = None,
                 assets_dir: str | os.PathLike | None = None, proxy: dict | None = None, photo: dict | None = None,
                 band_sigma_mm: float = 4.0, marks: bool = True, threads: int | None = 1,
                 micro_relief_scale: float = 1.0, cheek_creases: bool = False,
                 skin_pigment: bool = False) -> None:
        ages = (float(age_range[0]), float(age_range[1]))
        self.heads = ProceduralScanGenerator(face_model, gt_resolution, ages, neutral_prob, id_scale,
                                             albedo_dirs=albedo_dirs, albedo_max_photos=albedo_max_photos,
                                             albedo_resolution=albedo_resolution, cache_dir=cache_dir,
                                             assets_dir=assets_dir, micro_relief_scale=micro_relief_scale,
                                             cheek_creases=cheek_creases)
        self.face_model_name, self.resolution = str(face_model), int(resolution)
        self.backgrounds = BackgroundBank(background_dirs, cache_dir, max_photos=background_max_photos)
        proxy = dict(proxy or {})
        proxy["face_model"] = self.face_model_name
        proxy["unwrap"] = {**dict(proxy.get("unwrap", {}) or {}), "resolution": self.resolution}
        self.proxy_config = proxy
        options: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in dict(photo or {}).items()}
        self.photo_config = PhotoConfig(**options)
        self.band_sigma_mm, self.marks, self.assets_dir = float(band_sigma_mm), bool(marks), assets_dir
        self.skin_pigment = bool(skin_pigment)
        self.threads = None if threads is None else int(threads)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        for k in ("stage", "_static"):
            state.pop(k, None)
        return state

    @property
    def fm(self):
        return self.heads.fm

    @cached_property
    def stage(self):
        from fds.proxy.stage import ProxyStage

        return ProxyStage(self.proxy_config, cache_dir=None, assets_dir=self.assets_dir)

    @cached_property
    def _static(self) -> dict:
        r = self.heads.resolution
        return {"regions": photo_region_labels(self.fm, r), "mapper": FrameToTexel.of(self.heads.chart)}

    def prepare(self) -> None:
        """Build the cached banks (albedo, background face boxes) once, before workers start."""
        self.heads.bank  # noqa: B018
        self.backgrounds.faces  # noqa: B018

    # ------------------------------------------------------------------------------------------------------
    def render(self, seed: int, lights: list[dict] | None = None) -> tuple[RenderedPhoto, dict]:
        """The photo of ``seed`` and its head (``ProceduralScanGenerator.head`` + painted albedo, ``marks``);
        ``lights`` replaces the seed's random distant lights (``render_photo``)."""
        rng_geo, rng_alb, rng_marks, rng_photo = _seed_streams(seed)
        head = self.heads.head(rng_geo, rng_alb)
        albedo = head["albedo"][0].permute(1, 2, 0).numpy()
        albedo, tinted = tint_grey_albedo(rng_marks, albedo, head["covered"])
        info: dict[str, Any] = {"tinted_grey_source": tinted}
        if self.skin_pigment:
            albedo, info["pigment"] = skin_pigment(_pigment_stream(seed), albedo, head["covered"], head["texel_mm"])
        if self.marks:
            plain = albedo
            # the same draws as the paint below (rng_marks is not advanced): where the marks lie, any skin tone
            head["marks_coverage"], _ = marks_coverage(rng_marks, self.heads.chart, self._static["mapper"])
            albedo, marks = paint_face_marks(rng_marks, albedo, self.heads.chart, self._static["mapper"])
            info.update(marks)
            # where the marks changed the albedo (max over RGB, sRGB units): dark lines the GT says are flat
            head["marks_cover"] = np.abs(albedo - plain).max(-1).astype(np.float32)  # [R, R]
        head["albedo"] = torch.from_numpy(np.ascontiguousarray(albedo)).permute(2, 0, 1)[None]
        head["marks"] = info
        fm = self.fm
        surface = MeshData(head["vertices"], fm.triangles, fm.uv, fm.uv_triangles)
        photo = render_photo(rng_photo, surface, head, self._static["regions"], self.backgrounds, self.photo_config,
                             landmark_vertices=fm.landmarks_ibug68, lights=lights)
        if "marks_cover" in head:
            photo.marks = through_gt_uv(head["marks_cover"], photo.gt_uv)
        return photo, head

    def replay_marks(self, seed: int, tinted_grey_source: bool) -> tuple[np.ndarray, dict]:
        """The marks coverage ``[R_gt, R_gt]`` (GT chart) and description of ``seed``'s head without rendering it
        (the marks stream's draws depend only on the seed and on whether the bank albedo was tinted, which
        ``sample.json`` records as ``head.marks.tinted_grey_source``): fills ``marks.png`` of samples written
        before it existed (``datasets/add_flat_line_maps.py``)."""
        rng_marks = _seed_streams(seed)[2]
        if tinted_grey_source:  # consume tint_grey_albedo's draws
            chart = self.heads.chart
            tint_grey_albedo(rng_marks, np.full((*chart.covered.shape, 3), 0.5, np.float32), chart.covered)
        return marks_coverage(rng_marks, self.heads.chart, self._static["mapper"])

    def generate(self, seed: int, lights: list[dict] | None = None) -> PhotoSample:
        """The sample of ``seed`` (``lights``: see :meth:`render`); raises :class:`SkippedPhoto` when the proxy
        stage cannot use the photo."""
        with torch_threads(self.threads):
            return self._generate(seed, lights)

    def _generate(self, seed: int, lights: list[dict] | None = None) -> PhotoSample:
        from fds.proxy.landmarks import NoFaceError

        t0 = time.perf_counter()
        photo, head = self.render(seed, lights)
        t_render = time.perf_counter() - t0
        t0 = time.perf_counter()
        try:
            results = self.stage.process(photo.image, f"seed {seed}")
        except NoFaceError as exc:
            raise SkippedPhoto(f"seed {seed}: no face found ({exc})") from exc
        except Exception as exc:  # eos / unwrap failure on this photo
            raise SkippedPhoto(f"seed {seed}: proxy stage failed ({type(exc).__name__}: {exc})") from exc
        proxy = results[0]
        t_proxy = time.perf_counter() - t0
        check_detection(photo, proxy, f"seed {seed}")
        t0 = time.perf_counter()
        try:
            gt = fitted_gt(photo, proxy, self.fm, self.resolution, head["displacement_mm"], self.band_sigma_mm)
        except ValueError as exc:
            raise SkippedPhoto(f"seed {seed}: {exc}") from exc
        t_gt = time.perf_counter() - t0
        meta = {
            "source": "photo", "seed": int(seed), "face_model": self.fm.name,
            "texel_mm": [round(v, 5) for v in gt.texel_mm],
            "head": {"age": round(head["age"], 4), "id_coeffs": np.round(head["id_coeffs"], 4).tolist(),
                     "expression": np.round(np.asarray(head["expr"], float), 4).tolist(),
                     "activations": {k: round(v, 4) for k, v in head["activations"].items()},
                     "albedo_source": head.get("albedo_source"), "marks": head["marks"],
                     "wrinkles": [w.as_dict() for w in head["wrinkles"]], "gt_resolution": self.heads.resolution,
                     "gt_texel_mm": [round(v, 5) for v in head["texel_mm"]]},
            "photo": {"camera": photo.camera.to_dict(), **photo.params},
            "proxy": {"detector": proxy.detector, "yaw_pitch_roll_deg": list(proxy.fit.yaw_pitch_roll_deg),
                      "reprojection_error_px": round(float(proxy.fit.reprojection_error_px), 3),
                      "box_px": np.round(proxy.box_px, 2).tolist(), "expression_mode": proxy.expression_mode},
            "gt": gt.stats, "photo_regions": list(PHOTO_REGIONS),
            "timings_s": {"render": round(t_render, 3), "proxy": round(t_proxy, 3), "gt": round(t_gt, 3)},
        }
        marks = through_gt_uv(head["marks_coverage"], gt.gt_uv) if "marks_coverage" in head else None
        edges = None
        if photo.shadow is not None:
            edges = fitted_from_photo(cast_shadow_edges(photo.shadow).astype(np.float32), proxy, self.fm,
                                      self.resolution) * gt.mask
        scan = ScanSample(texture=np.asarray(proxy.uv.texture), displacement_mm=gt.displacement_mm, mask=gt.mask,
                          visibility=np.asarray(proxy.uv.confidence, np.float32), position_mm=gt.position_mm,
                          normal=gt.normal, meta=meta, marks=marks, shadow_edges=edges)
        return PhotoSample(scan, photo, proxy, gt, meta)


def _seed_streams(seed: int) -> list[np.random.Generator]:
    """The four independent random streams of a seed: geometry, albedo, marks, photo."""
    return [np.random.default_rng(s) for s in np.random.SeedSequence(int(seed)).spawn(4)]


#: Spawn key of the skin pigment's stream under a seed (``spawn(4)`` gives the keys 0–3; this one no spawn reaches).
_PIGMENT_STREAM = 0x70696773


def _pigment_stream(seed: int) -> np.random.Generator:
    """The skin pigment's random stream of a seed: independent of the four of :func:`_seed_streams`."""
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(_PIGMENT_STREAM,)))


def through_gt_uv(values: np.ndarray, gt_uv: np.ndarray) -> np.ndarray:
    """A map of the GT chart ``[R_gt, R_gt]`` at the GT-head UV each texel or pixel shows (``gt_uv [..., 2]``,
    NaN where it shows none: the fitted UV's ``gt_uv`` or the photo's) → ``float32 [...]`` (0 where NaN)."""
    from fds.mesh.bake import sample_map

    seen = np.isfinite(gt_uv[..., 0])
    out = np.zeros(seen.shape, np.float32)
    out[seen] = sample_map(values, gt_uv[seen])
    return out


def fitted_from_photo(image_map: np.ndarray, proxy, fm, resolution: int) -> np.ndarray:
    """A per-pixel map of the photo ``[H, W]`` in the fitted proxy's UV ``[R, R]``: each texel the unwrap saw
    takes the map's bilinear value at the pixel its colour came from (the fitted proxy point projected by the
    fit's camera, as ``fds.data.raycast_gt``); 0 elsewhere. ``proxy`` is the photo's ``ProxyResult``."""
    from scipy.ndimage import map_coordinates

    from fds.data.raycast_gt import proxy_maps

    pos, _, covered = proxy_maps(fm, proxy.fit.vertices_mm, resolution)
    conf = np.asarray(proxy.uv.confidence, np.float32)
    want = covered & (conf > 0) if conf.shape == covered.shape else covered
    px = proxy.fit.project(pos[want])  # [N, 2] pixels (x right, y down), pixel centres at integers
    out = np.zeros(covered.shape, np.float32)
    out[want] = map_coordinates(np.asarray(image_map, np.float32), [px[:, 1], px[:, 0]], order=1, cval=0.0)
    return out


def check_detection(photo: RenderedPhoto, proxy, name: str) -> None:
    """Raise :class:`SkippedPhoto` unless the detected face is the rendered one: its box holds the true nose tip
    (or, without landmarks, the centre of the rendered face) and is 0.4–2.5× as wide as the true landmarks (or
    0.25–2× the rendered face)."""
    lm = photo.landmarks_px
    x0, y0, x1, y1 = (float(v) for v in proxy.box_px)
    if np.isfinite(lm[30]).all():
        point, ref_w, lo, hi = lm[30], float(np.nanmax(lm[:, 0]) - np.nanmin(lm[:, 0])), 0.4, 2.5
    else:
        rows, cols = np.nonzero(photo.face_mask)
        point = np.array([cols.mean(), rows.mean()]) if len(rows) else np.array([-1.0, -1.0])
        ref_w, lo, hi = float(np.ptp(cols)) if len(cols) else 0.0, 0.25, 2.0
    if not (x0 <= point[0] <= x1 and y0 <= point[1] <= y1 and lo * ref_w <= x1 - x0 <= hi * ref_w):
        raise SkippedPhoto(f"{name}: the detector found another face (box {np.round(proxy.box_px, 1)})")


# ---------------------------------------------------------------------------------------------- on disk
def write_photo_sample(folder: str | os.PathLike, sample: PhotoSample) -> Path:
    """Write ``sample`` as one folder, atomically (the scan-sample files + the photo-level extras, see
    ``datasets/README.md``)."""
    def extras(tmp: Path) -> None:
        p = sample.photo
        Image.fromarray(p.image).save(tmp / "photo.png", compress_level=1)
        np.savez_compressed(tmp / "photo_gt.npz", normal_detail=p.normal_detail.astype(np.float16),
                            normal_smooth=p.normal_smooth.astype(np.float16), region=p.region,
                            face_mask=p.face_mask.astype(np.uint8), gt_uv=p.gt_uv.astype(np.float32),
                            landmarks_px=p.landmarks_px,
                            **{k: getattr(p, k).astype(np.float16) for k in ("shadow", "marks")
                               if getattr(p, k) is not None})
        np.savez_compressed(tmp / "gt_fitted.npz", height_mm=sample.gt.height_mm, gt_uv=sample.gt.gt_uv)
        (tmp / "proxy").mkdir()
        sample.proxy.save(tmp / "proxy")

    return write_sample(folder, sample.scan, overwrite=True, extras=extras)


class _SeedJobs(torch.utils.data.Dataset):
    """Seeds → written sample folders (generation and writing happen in the DataLoader worker)."""

    def __init__(self, generator: PhotoScanGenerator, root: Path, seeds: list[int]) -> None:
        self.generator, self.root, self.seeds = generator, root, seeds

    def __len__(self) -> int:
        return len(self.seeds)

    def __getitem__(self, i: int) -> dict:
        seed = self.seeds[i]
        folder = self.root / f"{SAMPLE_PREFIX}{seed:06d}"
        if (folder / "sample.json").is_file():
            return {"seed": seed, "ok": True, "folder": folder.name, "existing": True}
        t0 = time.perf_counter()
        try:
            sample = self.generator.generate(seed)
        except SkippedPhoto as exc:
            return {"seed": seed, "ok": False, "reason": str(exc), "seconds": time.perf_counter() - t0}
        write_photo_sample(folder, sample)
        return {"seed": seed, "ok": True, "folder": folder.name, "seconds": time.perf_counter() - t0,
                "timings": sample.meta["timings_s"]}


@dataclass
class GenerationReport:
    """What :func:`write_photo_samples` did: written folders, skipped seeds with reasons, seconds per sample."""

    written: list[str]
    skipped: list[tuple[int, str]]
    seconds: list[float]
    wall_s: float

    @property
    def skip_rate(self) -> float:
        n = len(self.written) + len(self.skipped)
        return len(self.skipped) / max(n, 1)

    def format(self) -> str:
        lines = [f"{len(self.written)} samples, {len(self.skipped)} photos skipped ({self.skip_rate:.0%}) in "
                 f"{self.wall_s:.1f} s"]
        lines += [f"  SKIPPED seed {s}: {r}" for s, r in self.skipped]
        return "\n".join(lines)


def _as_is(record: Any) -> Any:
    """The DataLoader's collate for one job record (module level: spawned workers pickle it)."""
    return record


def write_photo_samples(root: str | os.PathLike, seeds: Sequence[int], generator: PhotoScanGenerator,
                        workers: int = 0, progress: bool = False) -> GenerationReport:
    """Write ``photo_<seed>`` folders under ``root`` with a DataLoader (``workers`` processes, each building
    its own dlib/eos objects); existing complete samples are kept, skipped seeds are counted and listed in
    ``<root>/skipped.json`` (merged with earlier runs). Never stops on one bad photo."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    generator.prepare()
    jobs = _SeedJobs(generator, root, [int(s) for s in seeds])
    loader = torch.utils.data.DataLoader(jobs, batch_size=None, shuffle=False, num_workers=int(workers),
                                         collate_fn=_as_is,
                                         multiprocessing_context="spawn" if workers else None)
    written, skipped, seconds = [], [], []
    t0 = time.perf_counter()
    for rec in (__import__("tqdm").tqdm(loader, total=len(jobs), desc="photo samples") if progress else loader):
        if rec["ok"]:
            written.append(rec["folder"])
            if "seconds" in rec:
                seconds.append(rec["seconds"])
        else:
            skipped.append((rec["seed"], rec["reason"]))
            log.warning("photo samples: skipped %s", rec["reason"])
    report = GenerationReport(written, skipped, seconds, time.perf_counter() - t0)
    path = root / "skipped.json"
    old = json.loads(path.read_text()) if path.is_file() else {}
    old.update({str(s): r for s, r in skipped})
    for name in written:  # a seed that now succeeded is no longer skipped
        old.pop(str(int(name[len(SAMPLE_PREFIX):])), None)
    from fds.fileio import atomic_write_bytes

    atomic_write_bytes(path, [json.dumps(old, indent=1, sort_keys=True).encode()])
    return report


# --------------------------------------------------------------------------- flat-line maps backfill
_MARK_KEYS = ("hair_colour", "brow_density", "beard", "moles", "forehead_strands")


def add_flat_line_maps(folder: str | os.PathLike, generator: PhotoScanGenerator) -> str:
    """Write the flat-line maps (``marks.png``, ``shadow_edges.png``; module ``fds.data.sample_io``) a
    photo-level sample folder written before samples carried them lacks. ``marks.png`` replays its seed's marks
    (:meth:`PhotoScanGenerator.replay_marks`) through ``gt_fitted.npz``'s ``gt_uv``; the replay must describe
    the same marks as ``sample.json``, else the folder was made by another generator version and
    :class:`ValueError` names it. ``shadow_edges.png`` comes from ``photo_gt.npz``'s ``shadow`` and the stored
    proxy (samples written before shadows were stored get none). Returns what was written (``"marks"``,
    ``"shadow_edges"``, ``"marks+shadow_edges"``), ``"present"`` or ``"not photo"``."""
    from fds.data.sample_io import coverage_to_uint8, read_meta
    from fds.fileio import atomic_write_bytes

    folder = Path(folder)
    meta = read_meta(folder)
    if meta.get("source") != "photo":
        return "not photo"
    maps: dict[str, np.ndarray] = {}
    if not (folder / "marks.png").is_file():
        recorded = meta["head"]["marks"]
        coverage, info = generator.replay_marks(int(meta["seed"]),
                                                bool(recorded.get("tinted_grey_source", False)))
        differs = [k for k in _MARK_KEYS if k in recorded and json.dumps(info.get(k)) != json.dumps(recorded[k])]
        if differs:
            raise ValueError(f"{folder}: replaying seed {meta['seed']}'s marks gives other {differs} than "
                             "sample.json (written by another generator version): regenerate the sample instead")
        with np.load(folder / "gt_fitted.npz") as z:
            maps["marks"] = through_gt_uv(coverage, z["gt_uv"])
    if not (folder / "shadow_edges.png").is_file():
        with np.load(folder / "photo_gt.npz") as z:
            shadow = z["shadow"].astype(np.float32) if "shadow" in z.files else None
        if shadow is not None:
            from fds.proxy.stage import ProxyResult

            with np.load(folder / "maps.npz") as z:
                mask = z["mask"] > 0
            proxy = ProxyResult.load(folder / "proxy")
            maps["shadow_edges"] = fitted_from_photo(cast_shadow_edges(shadow).astype(np.float32), proxy,
                                                     generator.fm, int(meta["resolution"])) * mask
    for name, values in maps.items():
        buf = io.BytesIO()
        Image.fromarray(coverage_to_uint8(values)).save(buf, format="PNG", compress_level=1)
        atomic_write_bytes(folder / f"{name}.png", [buf.getvalue()])
    return "+".join(maps) or "present"


class _FlatLineJobs(torch.utils.data.Dataset):
    def __init__(self, generator: PhotoScanGenerator, folders: list[Path]) -> None:
        self.generator, self.folders = generator, folders

    def __len__(self) -> int:
        return len(self.folders)

    def __getitem__(self, i: int) -> tuple[str, str]:
        try:
            return self.folders[i].name, add_flat_line_maps(self.folders[i], self.generator)
        except (ValueError, OSError, KeyError) as exc:
            return self.folders[i].name, f"failed: {exc}"


def add_flat_line_maps_to_folder(root: str | os.PathLike, generator: PhotoScanGenerator, workers: int = 0,
                                 progress: bool = False) -> dict[str, list[str]]:
    """:func:`add_flat_line_maps` for every sample folder under ``root`` (DataLoader workers); goes on past a
    failing folder. Returns folder names by outcome (what was written, ``present``, ``not photo``, ``failed: …``)."""
    from fds.data.sample_io import list_samples

    jobs = _FlatLineJobs(generator, list_samples(root))
    loader = torch.utils.data.DataLoader(jobs, batch_size=None, shuffle=False, num_workers=int(workers),
                                         collate_fn=_as_is, multiprocessing_context="spawn" if workers else None)
    outcome: dict[str, list[str]] = {}
    records: Any = loader
    if progress:
        from fds.progress import progress as bar

        records = bar(loader, "flat-line maps", total=len(jobs))
    for name, result in records:
        outcome.setdefault(result, []).append(name)
        if result.startswith("failed"):
            log.warning("flat-line maps: %s %s", name, result)
    return outcome


class PhotoSource:
    """Photo-level samples generated on demand inside DataLoader workers (``fds.data.scans`` source API). A
    skipped seed is replaced by the next seed ``+ stride`` so every index yields a sample."""

    def __init__(self, generator: PhotoScanGenerator, seeds: Sequence[int], max_tries: int = 5) -> None:
        self.generator, self.seeds, self.max_tries = generator, [int(s) for s in seeds], int(max_tries)

    def __len__(self) -> int:
        return len(self.seeds)

    def __getitem__(self, i: int) -> ScanSample:
        seed = self.seeds[i]
        for k in range(self.max_tries):
            try:
                return self.generator.generate(seed + k * 1_000_003).scan
            except SkippedPhoto as exc:
                log.info("photo source: %s", exc)
        raise RuntimeError(f"photo source: {self.max_tries} photos in a row skipped from seed {seed}")

    def chart_key(self, i: int) -> tuple[str, int]:
        return self.generator.face_model_name, self.generator.resolution
