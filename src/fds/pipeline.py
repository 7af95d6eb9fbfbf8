"""Photo → everything: proxy, detail maps, baked detailed mesh and previews (used by ``infer.py``).

One code path: the proxy comes from :class:`fds.proxy.ProxyStage`, the detail from
:class:`fds.detail.DetailPredictor` (the checkpoint's networks, as evaluation runs them), and everything is written
by :mod:`fds.export`.

Outputs per face, in ``<output>/<photo stem>/`` (``<stem>_face<k>`` for further faces):

- ``proxy.obj`` + ``proxy.mtl`` + ``texture.png``: the fitted proxy (mm, model frame) with the unwrapped photo;
- ``displacement.png`` (16-bit) + ``displacement.json`` (mm scale, conventions) + ``displacement.exr`` and/or
  ``displacement.npy`` (float32 mm, ``detail.float_format``);
- ``normal_tangent.png``, ``normal_object.png``: 8-bit normal maps ((n + 1)/2·255);
- ``detailed.glb`` (+ ``detailed.ply`` / ``detailed.obj`` on request, ``bake.formats``): the proxy subdivided
  and displaced, with the texture, the normal map (and tangents) and the displacement image;
- ``preview.png``: input | proxy shaded | detailed shaded | normal map;
- ``result.json``: timings by stage, fit error, emotion, expression coefficients, warnings.

``<output>/summary.json`` lists the photos that worked (with their warnings), those that did not and the input
entries that are not photos, each with its reason and the run that wrote it; a later run into the same folder
replaces the records of the photos it redoes and keeps the others. Each photo's folders appear complete or not
at all, and one run at a time writes into ``output=`` (:mod:`fds.outputs`); folder input is walked by
:mod:`fds.inputs`.
"""

from __future__ import annotations

import json
import logging
import sys
import time
import traceback
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf

from fds.export.maps import encode_normal_map, write_displacement, write_normal_map, write_png
from fds.export.mesh_io import write_baked, write_obj
from fds.export.normal_maps import normal_maps
from fds.export.previews import View, preview_maps, render_proxy_and_detail, write_preview
from fds.fileio import BackgroundWrites, atomic_write_bytes
from fds.inputs import InputEntry, NoInputError, expand_inputs
from fds.memory import release_free_memory
from fds.mesh.bake import bake_displacement
from fds.mesh.meshdata import MeshData
from fds.outputs import OutputError, OutputFolder, unique_names
from fds.progress import progress
from fds.proxy import ImageReadError, NoFaceError, ProxyResult, ProxyStage
from fds.proxy.landmarks import load_image
from fds.proxy.prefetch import ProxyOutcome, prefetch_proxies
from fds.proxy.quality import confidence_warnings, exposure_warnings

log = logging.getLogger(__name__)


class ConfigError(ValueError):
    """An inference setting is invalid (found before any photo is processed)."""


@dataclass
class DetailSettings:
    """How detail is synthesised and exported (``configs/infer.yaml`` → ``detail``, ``bake``, ``preview``)."""

    resolution: int = 1024  # output maps, texels (1024 / 2048 / 4096)
    batch_size: int = 8  # patches per forward pass
    mode: str = "patches"  # "patches" (Gaussian-blended patch grid) | "full" (fully convolutional)
    edge_blur_texels: float = 4.0  # soft fade of the detail towards unseen texels
    flip_average: bool = True  # also run the mirrored texture and average (DetailPredictor): 2x the network time
    patch_stride: int | None = None  # texels between patches at the network's density (None: half a patch)
    float_format: str = "both"  # the float32 mm displacement: "exr" | "npy" | "both" (fds.export.maps)
    max_triangles: int = 500_000  # cap of the baked mesh (fds.mesh.bake.DEFAULT_MAX_TRIANGLES)
    formats: tuple[str, ...] = ("glb",)
    preview_height: int = 512
    writer_threads: int = 4  # threads encoding the output files beside the computation (0: in the caller)

    def __post_init__(self) -> None:
        r = self.resolution
        checks = [
            ("detail.resolution", r, isinstance(r, int) and 256 <= r <= 8192 and r & (r - 1) == 0,
             "a power of two from 256 to 8192 texels (1024, 2048, 4096)"),
            ("detail.batch_size", self.batch_size, isinstance(self.batch_size, int) and self.batch_size >= 1,
             "at least 1"),
            ("detail.mode", self.mode, self.mode in ("patches", "full"), "patches or full"),
            ("detail.patch_stride", self.patch_stride,
             self.patch_stride is None or (isinstance(self.patch_stride, int) and self.patch_stride >= 1),
             "null (half the patch) or at least 1 texel"),
            ("detail.edge_blur_texels", self.edge_blur_texels, 0 <= self.edge_blur_texels <= 256, "0 to 256"),
            ("detail.float_format", self.float_format, self.float_format in ("exr", "npy", "both"), "exr, npy or both"),
            ("bake.max_triangles", self.max_triangles, self.max_triangles >= 10_000, "at least 10000"),
            ("bake.formats", list(self.formats), set(self.formats) <= {"obj", "ply", "glb"} and len(self.formats) > 0,
             "a non-empty list of obj, ply, glb"),
            ("preview.height", self.preview_height, 64 <= self.preview_height <= 4096, "64 to 4096 px"),
            ("export.writer_threads", self.writer_threads,
             isinstance(self.writer_threads, int) and 0 <= self.writer_threads <= 64, "0 to 64 threads"),
        ]
        for key, value, ok, want in checks:
            if not ok:
                raise ConfigError(f"{key}={value!r} is invalid: use {want}")


@dataclass
class ImageOutcome:
    image: str
    ok: bool
    faces: list[str] = field(default_factory=list)  # output folders
    reason: str = ""
    warnings: list[str] = field(default_factory=list)


def face_crop_view(result: ProxyResult, size: int, margin: float = 0.35,
                   photo: np.ndarray | None = None) -> tuple[np.ndarray, View]:
    """A square crop of the photo around the face (``size``² px, uint8) and the fitted pose's view of it, so
    renders of the proxy and the detailed mesh overlay the crop pixel for pixel (``photo``: already loaded)."""
    photo = load_image(result.image_path) if photo is None else photo
    h, w = result.fit.image_size
    lo, hi = result.landmarks_px.min(0), result.landmarks_px.max(0)
    half = (1 + margin) * float((hi - lo).max()) / 2
    cx, cy = (lo + hi) / 2
    x0, y0, x1, y1 = cx - half, cy - half * 1.1, cx + half, cy + half * 0.9  # a little more forehead
    f = (size - 1) / (y1 - y0)  # crop pixel i sits at photo y0 + i / f (linspace, align_corners)
    # crop + resize in one resampling step (affine grid over the photo; outside the photo stays black)
    xs = torch.linspace(x0, x1, size) / (w - 1) * 2 - 1
    ys = torch.linspace(y0, y1, size) / (h - 1) * 2 - 1
    grid = torch.stack(torch.meshgrid(ys, xs, indexing="ij")[::-1], -1)[None].float()
    img = torch.from_numpy(np.array(photo)).permute(2, 0, 1)[None].float()
    crop = F.grid_sample(img, grid, mode="bilinear", align_corners=True)[0].permute(1, 2, 0).clamp(0, 255)
    s, t = result.fit.scale_px_per_mm, result.fit.translation_mm
    view = View(np.asarray(result.fit.rotation, np.float64), s * f, f * (s * float(t[0]) - x0),
                f * (y1 - h + s * float(t[1])), size, size)
    return crop.byte().numpy(), view


class DetailPipeline:
    """Photo → proxy (:class:`fds.proxy.ProxyStage`) → detail (:class:`fds.detail.DetailPredictor`) → maps and
    meshes (:mod:`fds.export`), for one checkpoint: this class only orchestrates and writes."""

    def __init__(self, ckpt: str | Path, proxy: dict | None = None, cache_dir: str | Path | None = None,
                 settings: DetailSettings | None = None, device: str = "auto",
                 assets_dir: str | Path | None = None):
        from fds.detail import DetailPredictor, FaceModelMismatch, SettingRefused

        self.device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        try:  # the cheap checks first
            self.stage = ProxyStage(proxy, cache_dir=cache_dir, device=self.device, assets_dir=assets_dir)
        except (ValueError, TypeError) as exc:  # unknown keys or values of the proxy config
            raise ConfigError(f"proxy settings: {exc}") from None
        s = self.settings = settings or DetailSettings()
        try:
            self.predictor = DetailPredictor.from_checkpoint(
                ckpt, self.stage.face_model, self.device, batch_size=s.batch_size, mode=s.mode,
                flip_average=s.flip_average, edge_blur_texels=s.edge_blur_texels, resolution=s.resolution,
                patch_stride=s.patch_stride)
        except (FaceModelMismatch, SettingRefused) as exc:
            raise ConfigError(str(exc)) from None
        self.disp_scale_mm = self.predictor.disp_scale_mm
        self.ckpt = str(ckpt)

    # ---------------------------------------------------------------------------------------- one face
    def write_face(self, result: ProxyResult, out: Path) -> dict[str, Any]:
        """Every output of one face into ``out``; returns the ``result.json`` content."""
        fm, s = self.stage.face_model, self.settings
        times: dict[str, float] = {f"proxy_{k}": float(v) for k, v in result.timings_s.items()}
        photo = load_image(result.image_path)
        release_free_memory()  # the proxy stage's freed buffers, before the network's peak (fds.memory)
        t = time.perf_counter()
        detail = self.predictor(result)
        disp_mm, coverage, warnings = detail.displacement_mm, detail.coverage, detail.warnings
        times["detail"] = time.perf_counter() - t
        release_free_memory()  # the network's freed activations, before the maps and the mesh
        warnings = (exposure_warnings(photo, result.landmarks_px)
                    + confidence_warnings(result.detector, result.detector_score) + warnings)
        log.info("%s: detail done in %.1f s", out.name, times["detail"])

        with BackgroundWrites(s.writer_threads) as writes:
            t = time.perf_counter()
            proxy = MeshData(result.fit.vertices_mm, fm.triangles, fm.uv, fm.uv_triangles)
            writes.submit(write_png, out / "texture.png", result.uv.texture)
            writes.submit(write_obj, out / "proxy.obj", proxy, texture="texture.png")
            write_displacement(out / "displacement", disp_mm, self.disp_scale_mm, coverage=coverage,
                               metadata={"checkpoint": Path(self.ckpt).name, "image": result.image_path},
                               float_format=s.float_format, writes=writes)
            maps = normal_maps(disp_mm, result.fit.vertices_mm, fm.triangles, fm.uv, fm.uv_triangles,
                               coverage=coverage, work_resolution=min(s.resolution, 1024), device=self.device)
            writes.submit(write_normal_map, out / "normal_tangent.png", maps.tangent, "tangent", maps.coverage)
            writes.submit(write_normal_map, out / "normal_object.png", maps.object, "object", maps.coverage)
            times["maps"] = time.perf_counter() - t
            log.info("%s: maps done in %.1f s (files still encoding)", out.name, times["maps"])

            t = time.perf_counter()
            baked = bake_displacement(proxy, disp_mm, max_triangles=s.max_triangles)
            times["bake"] = time.perf_counter() - t

            t = time.perf_counter()  # the preview, while the files encode
            crop, view = face_crop_view(result, s.preview_height, photo=photo)
            small = preview_maps(maps, 1024)  # the panels are ~512 px: shade from ≤ 1024² maps
            proxy_img, detail_img = render_proxy_and_detail(proxy, small.object, view, device=self.device)
            write_preview(out / "preview.png", crop, proxy_img, detail_img,
                          encode_normal_map(small.tangent, small.coverage, (0.0, 0.0, 1.0)), height=s.preview_height)
            times["preview"] = time.perf_counter() - t
            log.info("%s: preview done in %.1f s", out.name, times["preview"])
            t = time.perf_counter()
            writes.wait()  # the glb embeds texture.png, normal_tangent.png and displacement.png
            times["files"] = time.perf_counter() - t
            t = time.perf_counter()
            disp_meta = {"scale_mm": self.disp_scale_mm, "encoding": "d_mm = (png / 65535 * 2 - 1) * scale_mm",
                         "uv_convention": "glTF TEXCOORD_0 (row 0 = v 0 = top)"}
            files = write_baked(
                out / "detailed", baked, texture="texture.png", formats=tuple(s.formats),
                texture_image=(out / "texture.png").read_bytes(), normal_png=(out / "normal_tangent.png").read_bytes(),
                extra_images={"displacement": ((out / "displacement.png").read_bytes(), disp_meta)})
            times["bake"] += time.perf_counter() - t
            log.info("%s: bake done in %.1f s", out.name, times["bake"])

        info: dict[str, Any] = {
            "image": result.image_path, "image_sha1": result.image_sha1, "face_index": result.face_index,
            "face_model": result.face_model,
            "checkpoint": self.ckpt, "timings_s": {k: round(v, 4) for k, v in times.items()},
            "reprojection_error_px": float(result.fit.reprojection_error_px),
            "yaw_pitch_roll_deg": [float(a) for a in result.fit.yaw_pitch_roll_deg],
            "emotion": result.emotion_probs, "expression_mode": result.expression_mode,
            "expression_coeffs": dict(zip(fm.expr_names, map(float, result.fit.expr_coeffs), strict=False)),
            "displacement_mm": {"scale": self.disp_scale_mm, "min": float(disp_mm.min()),
                                "max": float(disp_mm.max()), "coverage": float(coverage.mean())},
            "detailed_mesh": {"vertices": int(len(baked.mesh.vertices)),
                              "triangles": int(len(baked.mesh.triangles)), "levels": int(baked.levels)},
            "files": sorted(p.name for p in out.iterdir() if p.is_file()) + [Path(p).name for p in files.values()],
            "warnings": warnings,
        }
        info["files"] = sorted(set(info["files"]) | {"result.json"})
        atomic_write_bytes(out / "result.json", [json.dumps(info, indent=2).encode()])
        return info

    # -------------------------------------------------------------------------------------- many photos
    def run(self, inputs: list[Path], output: Path | OutputFolder,
            rejected: list[InputEntry] | tuple = (), workers: int = 1) -> list[ImageOutcome]:
        """Every photo into ``output`` (locked for the run); one failure never stops the others. Each photo's
        folders appear complete or not at all. Writes ``summary.json`` with the ``rejected`` input entries too.
        ``workers``: processes computing the next photos' proxies while this one runs the network and the
        writers (:func:`fds.proxy.prefetch.prefetch_proxies`; 0 = one photo after the other in this process)."""
        folder = output if isinstance(output, OutputFolder) else OutputFolder(output)
        opened_here = not folder.is_open
        folder.open()
        try:
            names = unique_names(inputs)
            with closing(prefetch_proxies(self.stage, inputs, workers=workers)) as proxies:
                outcomes = [self._run_one(p.path, folder, names, p)
                            for p in progress(proxies, "photos", total=len(inputs), unit="photo")]
            outcomes += [ImageOutcome(str(e.path), False, reason=e.reason) for e in rejected if e.photo]
            summary = {
                "checkpoint": self.ckpt,
                "succeeded": [{"image": o.image, "outputs": o.faces, "warnings": o.warnings} for o in outcomes if o.ok],
                "failed": [{"image": o.image, "reason": o.reason} for o in outcomes if not o.ok],
                "skipped": [{"path": str(e.path), "reason": e.reason} for e in rejected if not e.photo],
            }
            try:
                folder.write_summary(summary)  # merged with the records of earlier runs into this folder
            except OSError as exc:
                log.error("could not write %s: %s", folder.root / "summary.json", exc)
        finally:
            if opened_here:
                folder.close()
        return outcomes

    def _run_one(self, path: Path, folder: OutputFolder, names: dict[Path, str],
                 proxy: ProxyOutcome | None = None) -> ImageOutcome:
        try:
            results = proxy.get() if proxy is not None else self.stage(path)
            sha = results[0].image_sha1
            name = folder.claim(names[path], sha, reserved=set(names.values()))
            face_names = [name if r.face_index == 0 else f"{name}_face{r.face_index}" for r in results]
            warnings: list[str] = []
            with folder.photo(face_names, sha) as tmps:
                for r, tmp in zip(results, tmps, strict=True):
                    warnings += self.write_face(r, tmp)["warnings"]
            folders = [str(folder.root / n) for n in face_names]
            log.info("%s → %s", path, ", ".join(folders))
            return ImageOutcome(str(path), True, folders, warnings=warnings)
        except (ImageReadError, NoFaceError) as exc:
            log.warning("skipped %s: %s", path, exc)
            return ImageOutcome(str(path), False, reason=str(exc))
        except OSError as exc:  # disk full, I/O error: name the file; nothing of the photo was left behind
            log.error("failed on %s: %s", path, exc)
            return ImageOutcome(str(path), False, reason=f"{type(exc).__name__}: {exc}")
        except Exception as exc:  # report and go on with the next photo
            log.error("failed on %s:\n%s", path, traceback.format_exc())
            return ImageOutcome(str(path), False, reason=f"{type(exc).__name__}: {exc}")
        finally:
            release_free_memory()  # the next photo's peak starts from what this process really uses


def _settings(cfg: DictConfig) -> DetailSettings:
    d = cfg.detail
    try:
        return DetailSettings(resolution=int(d.resolution), batch_size=int(d.batch_size), mode=str(d.mode),
                              edge_blur_texels=float(d.edge_blur_texels), flip_average=bool(d.flip_average),
                              patch_stride=None if d.get("patch_stride") is None else int(d.patch_stride),
                              float_format=str(d.get("float_format", "both")),
                              max_triangles=int(cfg.bake.max_triangles), formats=tuple(cfg.bake.formats),
                              preview_height=int(cfg.preview.height),
                              writer_threads=int(cfg.get("export", {}).get("writer_threads", 4)))
    except ConfigError:
        raise
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"detail/bake/preview settings: {exc}") from None


def infer(cfg: DictConfig) -> int:
    """``infer.py``: run the pipeline on ``cfg.input``. Returns the exit status: 0 when every photo worked, 1
    when some failed (``summary.json`` says why), 2 for a problem with the configuration, the output folder,
    the checkpoint or the input found before any photo is processed (one line on stderr, no traceback)."""
    from omegaconf.errors import OmegaConfBaseException

    from fds.models.checkpoint import CheckpointError

    early = (ConfigError, OutputError, CheckpointError, NoInputError, OmegaConfBaseException)
    try:
        settings = _settings(cfg)
        workers = cfg.get("workers", 1)
        if not isinstance(workers, int) or isinstance(workers, bool) or not 0 <= workers <= 64:
            raise ConfigError(f"workers={workers!r} is invalid: use a whole number of processes from 0 to 64")
        output = OutputFolder(cfg.output).open()
    except early as exc:
        print(f"fds infer: {exc}", file=sys.stderr)
        return 2
    with output:
        try:
            pipeline = DetailPipeline(cfg.ckpt, proxy=cast(dict, OmegaConf.to_container(cfg.proxy, resolve=True)),
                                      cache_dir=cfg.cache_dir, settings=settings, device=cfg.device,
                                      assets_dir=cfg.paths.assets_dir)
            spec = cfg.input if isinstance(cfg.input, str) else cast(list, OmegaConf.to_container(cfg.input))
            exclude = [output.root] + ([Path(cfg.cache_dir)] if cfg.cache_dir else [])
            inputs = expand_inputs(spec, recursive=bool(cfg.get("recursive", True)), exclude=exclude)
        except early as exc:
            print(f"fds infer: {exc}", file=sys.stderr)
            return 2
        outcomes = pipeline.run(inputs.photos, output, inputs.rejected, workers=workers)
    failed = [o for o in outcomes if not o.ok]
    print(f"{len(outcomes) - len(failed)}/{len(outcomes)} photos processed into {output.root}"
          + (f"; {len(inputs.skipped)} other entries skipped (see summary.json)" if inputs.skipped else ""))
    for o in failed:
        print(f"FAILED {o.image}: {o.reason}")
    if not (output.root / "summary.json").is_file():
        print(f"fds infer: could not write {output.root / 'summary.json'} (see the log)", file=sys.stderr)
        return 1
    return 1 if failed else 0
