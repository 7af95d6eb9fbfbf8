"""Procedural detail scans: GT displacement (mm) + the degraded UV texture a photo of that face would give.

One sample, fully determined by its integer seed (:meth:`ProceduralScanGenerator.generate`):

1. identity coefficients ~ N(0, 1) standard deviations (× ``id_scale``) and an expression (neutral with
   ``neutral_prob``, else one dominant emotion 0.4–1 plus small others)
   of the face model → posed proxy mesh (mm, model frame);
2. age ~ U(``age_range``); wrinkles placed anatomically in the landmark frame, deepened by age and by the
   expression (``fds.data.wrinkles``), plus pores and skin texture → ``displacement_mm`` along the normal;
3. detailed normals = proxy normals tilted by the displacement's metric slope in the proxy's tangent frames
   (``fds.render.normals``);
4. albedo from real skin (``fds.data.skin``) with colour variation; a random order-2 SH environment
   (``fds.data.lighting``); clean texture = albedo · shading(detailed normals) (``fds.render.shading``) ·
   the displacement's cavity occlusion (``fds.data.occlusion``: grooves read as dark lines, as in photos);
5. degradations of a real unwrap (``fds.data.degrade``): misregistration warp, resolution loss, blur, noise,
   JPEG, missing texels outside a random head pose's visibility.

Three independent random streams (geometry, appearance, degradation) are spawned from the seed, so e.g.
changing the degradation strength leaves the geometry of a seed unchanged.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import cast

import numpy as np
import torch

from fds.data.degrade import degrade_texture, view_visibility
from fds.data.lighting import random_sh
from fds.data.occlusion import cavity_occlusion
from fds.data.sample_io import ScanSample
from fds.data.skin import AlbedoBank, find_photos, flat_albedo, vary_albedo
from fds.data.wrinkles import cheek_creases, expression_activations, micro_relief, render_wrinkles, wrinkle_layout
from fds.facemodel import FaceModel, load_face_model, region_masks
from fds.facemodel.uvchart import UVChart, uv_chart
from fds.progress import progress
from fds.render import normals_from_displacement, sh_irradiance, tangent_frames, tangent_to_object, vertex_normals

#: Pore density (pores per mm²) by anatomical region; eyes and lips have none.
PORE_DENSITY = {"nose": 1.0, "cheeks": 0.5, "forehead": 0.4, "chin": 0.4, "brows": 0.2}
#: Spawn-key entry of the cheek creases' stream under a head's geometry stream (no spawn index reaches it).
_CHEEK_STREAM = 0x636865656B


class ProceduralScanGenerator:
    """Generate :class:`~fds.data.sample_io.ScanSample` s from seeds (picklable; heavy state built lazily
    per process, so it can be used inside DataLoader workers).

    Args:
        face_model: face model name (``fds.facemodel.load_face_model``) or a :class:`FaceModel`.
        resolution: UV map size R (texels).
        age_range: range of the age parameter (0 ≈ 20 years, 1 ≈ 80 years).
        neutral_prob: probability of a neutral expression.
        id_scale: scale of the identity coefficients' standard deviations.
        degrade_strength: 0 = clean rendering, 1 = the documented degradation ranges.
        albedo_dirs: folders of photos with same-stem ``.pts`` landmarks for the albedo bank; empty → the
            palette fallback (``fds.data.skin.flat_albedo``).
        albedo_max_photos: at most this many photos (evenly spread over the sorted list) enter the bank.
        cache_dir: where the albedo bank is cached (``None``: not cached on disk).
        assets_dir: passed to the face-model loader.
        occlusion_strength / occlusion_radius_mm: cavity occlusion of the shading
            (:func:`fds.data.occlusion.cavity_occlusion`; strength 0 = SH shading alone, as before 2026-11-27).
        micro_relief_scale: factor on the pore-scale relief (:func:`fds.data.skin.micro_relief`); its random draws
            are made either way, so 0 gives the same head with wrinkles only (the photo-level ceilings benchmark).
        cheek_creases: add an ageing cheek's creases (:func:`fds.data.wrinkles.cheek_creases`), drawn from a
            stream of their own, so every other draw of a seed stays the same; off by default, so the held-out
            benchmarks' heads are those of the seeds as first rendered.
    """

    def __init__(self, face_model: str | FaceModel = "sfm", resolution: int = 512,
                 age_range: tuple[float, float] = (0.0, 1.0), neutral_prob: float = 0.3, id_scale: float = 0.8,
                 degrade_strength: float = 1.0, albedo_dirs: Sequence[str | os.PathLike] = (),
                 albedo_max_photos: int = 16, albedo_resolution: int = 256,
                 cache_dir: str | os.PathLike | None = None, assets_dir: str | os.PathLike | None = None,
                 occlusion_strength: float = 1.0, occlusion_radius_mm: float = 1.5,
                 micro_relief_scale: float = 1.0, cheek_creases: bool = False) -> None:
        if resolution < 64:
            raise ValueError(f"resolution must be ≥ 64 texels for wrinkle detail, got {resolution}")
        lo, hi = age_range
        if not 0 <= lo <= hi <= 1:
            raise ValueError(f"age_range must satisfy 0 ≤ lo ≤ hi ≤ 1, got {age_range}")
        self._fm = face_model if isinstance(face_model, FaceModel) else None
        self.face_model_name = face_model.name if isinstance(face_model, FaceModel) else str(face_model)
        self.resolution, self.age_range = int(resolution), (float(lo), float(hi))
        self.neutral_prob, self.id_scale, self.degrade_strength = neutral_prob, id_scale, degrade_strength
        self.albedo_dirs = [str(d) for d in albedo_dirs]
        self.albedo_max_photos, self.albedo_resolution = albedo_max_photos, albedo_resolution
        self.cache_dir, self.assets_dir = cache_dir, assets_dir
        self.occlusion_strength, self.occlusion_radius_mm = float(occlusion_strength), float(occlusion_radius_mm)
        self.micro_relief_scale = float(micro_relief_scale)
        self.cheek_creases = bool(cheek_creases)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        for k in ("chart", "_static"):  # rebuilt per process; the face model and albedo bank travel along
            state.pop(k, None)
        return state

    # --- lazily built, per process ------------------------------------------------------------------------
    @cached_property
    def fm(self) -> FaceModel:
        return self._fm if self._fm is not None else load_face_model(self.face_model_name, self.assets_dir)

    @cached_property
    def chart(self) -> UVChart:
        return uv_chart(self.fm, self.resolution)

    @cached_property
    def bank(self) -> AlbedoBank | None:
        photos = find_photos(self.albedo_dirs, with_landmarks=True)
        if not photos or self.albedo_max_photos <= 0:  # no photos: the palette fallback
            return None
        if len(photos) > self.albedo_max_photos:
            photos = [photos[i] for i in np.linspace(0, len(photos) - 1, self.albedo_max_photos).astype(int)]
        return AlbedoBank.build(self.fm, photos, self.albedo_resolution, self.cache_dir)

    @cached_property
    def _static(self) -> dict:
        masks = region_masks(self.fm, self.resolution)
        density = np.zeros((self.resolution,) * 2, np.float32)
        for name, d in PORE_DENSITY.items():
            density[masks[name]] = d
        y = self.chart.frame_xy[..., 1]
        top = float(np.nanpercentile(y[masks["forehead"]], 98)) if masks["forehead"].any() else 1.0
        return {"pore_density": density, "forehead_top": top}

    # --- sampling -------------------------------------------------------------------------------------
    def _expression(self, rng: np.random.Generator) -> np.ndarray:
        fm = self.fm
        e = np.zeros(fm.num_expression, np.float32)
        if fm.num_expression == 0 or rng.random() < self.neutral_prob:
            return e
        if fm.expr_kind == "pca":
            return (rng.standard_normal(fm.num_expression) * 0.7).astype(np.float32)  # standard deviations
        e[int(rng.integers(fm.num_expression))] = rng.uniform(0.4, 1.0)
        extra = rng.random(fm.num_expression) < 0.3
        e = np.where(extra & (e == 0), rng.uniform(0, 0.15, fm.num_expression), e)
        return e.astype(np.float32)

    def generate(self, seed: int) -> ScanSample:
        """The sample of ``seed`` (same seed → identical arrays)."""
        return self.generate_with_internals(seed)[0]

    def head(self, rng_geo: np.random.Generator, rng_app: np.random.Generator | None = None) -> dict:
        """The detailed head of one sample in the face model's UV chart (no lighting, no degradation).

        Draws identity, expression, age, wrinkles and micro-relief from ``rng_geo`` and, when ``rng_app`` is
        given, the albedo from it. Returns ``vertices [V,3]`` (mm, model frame), ``id_coeffs``, ``expr``, ``age``,
        ``activations``, ``wrinkles``, ``displacement_mm [R,R]``, ``position_mm [R,R,3]``, ``texel_mm (du, dv)``,
        ``covered [R,R]``, the model-frame maps ``normal [1,3,R,R]`` (proxy), ``normal_detail [1,3,R,R]``
        (tilted by the displacement's metric slope), ``tangent``/``bitangent [1,3,R,R]`` and, with ``rng_app``,
        ``albedo [1,3,R,R]`` in [0, 1] and ``albedo_source``.
        """
        fm, chart = self.fm, self.chart
        id_coeffs = rng_geo.standard_normal(fm.num_identity) * self.id_scale  # in standard deviations
        expr = self._expression(rng_geo)
        verts = fm.vertices(id_coeffs.astype(np.float32), expr)
        age = float(rng_geo.uniform(*self.age_range))
        act = expression_activations(fm.expr_names, expr)
        covered = chart.covered
        position = chart.interpolate(verts)  # [R,R,3] mm
        wrinkles = wrinkle_layout(rng_geo, age, act, chart.landmarks_frame, self._static["forehead_top"])
        if self.cheek_creases:  # their own stream, a child of rng_geo's seed: rng_geo's draws are untouched
            seq = cast(np.random.SeedSequence, rng_geo.bit_generator.seed_seq)
            child = np.random.SeedSequence(seq.entropy, spawn_key=(*seq.spawn_key, _CHEEK_STREAM))
            rng_cheek = np.random.default_rng(child)
            wrinkles = wrinkles + cheek_creases(rng_cheek, age, act, chart.landmarks_frame)
        disp = render_wrinkles(wrinkles, chart.frame_xy, position, covered, chart.frame_unit_mm)
        du, dv = chart.texel_mm(position)
        disp += self.micro_relief_scale * micro_relief(rng_geo, covered, self._static["pore_density"],
                                                       float(np.sqrt(du * dv)), age)
        disp[~covered] = 0

        # proxy frames in UV and detailed normals (model frame)
        v_t = torch.from_numpy(verts)
        tri = torch.from_numpy(fm.triangles.astype(np.int64))
        t_v, b_v, n_v = tangent_frames(v_t, torch.from_numpy(fm.uv), tri, torch.from_numpy(fm.uv_triangles))
        del n_v
        n_v = vertex_normals(v_t, tri)

        def to_map(a: torch.Tensor) -> torch.Tensor:  # [V,3] → [1,3,R,R] unit vectors (0 outside)
            m = torch.from_numpy(chart.interpolate(a.numpy())).permute(2, 0, 1)[None]
            return torch.nn.functional.normalize(m, dim=1)

        n_map, t_map, b_map = to_map(n_v), to_map(t_v), to_map(b_v)
        disp_t = torch.from_numpy(disp)[None, None]
        n_ts = normals_from_displacement(disp_t, (du, dv))
        n_detail = tangent_to_object(n_ts, t_map, b_map, n_map, dim=1)
        cov_t = torch.from_numpy(covered)[None, None].float()
        out = {"vertices": verts, "id_coeffs": id_coeffs, "expr": expr, "age": age, "activations": act,
               "wrinkles": wrinkles, "displacement_mm": disp, "position_mm": position, "texel_mm": (du, dv),
               "covered": covered, "normal": n_map, "normal_detail": n_detail * cov_t, "tangent": t_map,
               "bitangent": b_map}
        if rng_app is not None:
            if self.bank is not None:
                base, albedo_src = self.bank.sample(rng_app)
            else:
                base, albedo_src = flat_albedo(rng_app, self.albedo_resolution), "palette"
            out["albedo"] = torch.from_numpy(vary_albedo(rng_app, base, self.resolution)).permute(2, 0, 1)[None]
            out["albedo_source"] = albedo_src
        return out

    def generate_with_internals(self, seed: int) -> tuple[ScanSample, dict[str, torch.Tensor]]:
        """:meth:`generate` plus intermediate maps ``[1,C,R,R]``: ``normal_detail`` (model frame),
        ``shading``, ``clean`` (texture before degradation), ``albedo``."""
        fm = self.fm
        rng_geo, rng_app, rng_deg = (np.random.default_rng(s) for s in np.random.SeedSequence(int(seed)).spawn(3))
        h = self.head(rng_geo, rng_app)
        id_coeffs, expr, age, act, wrinkles = h["id_coeffs"], h["expr"], h["age"], h["activations"], h["wrinkles"]
        disp, covered, position, (du, dv) = h["displacement_mm"], h["covered"], h["position_mm"], h["texel_mm"]
        n_map, n_detail, albedo, albedo_src = h["normal"], h["normal_detail"], h["albedo"], h["albedo_source"]
        cov_t = torch.from_numpy(covered)[None, None].float()

        # appearance
        sh = random_sh(rng_app)
        occlusion = torch.from_numpy(cavity_occlusion(disp, covered, (du, dv), self.occlusion_radius_mm,
                                                      self.occlusion_strength))[None, None]
        shading = sh_irradiance(n_detail, torch.from_numpy(sh)[None]).clamp_min(0) * occlusion
        clean = (albedo * shading).clamp(0, 1) * cov_t

        vis, pose = view_visibility(rng_deg, n_map, cov_t)
        texture, vis, deg = degrade_texture(rng_deg, clean, vis, self.degrade_strength)
        texture = texture * cov_t
        vis = vis * cov_t

        meta = {
            "source": "procedural", "seed": int(seed), "face_model": fm.name, "age": round(age, 4),
            "expression": dict(zip(fm.expr_names, np.round(expr.astype(float), 4).tolist(), strict=False))
            if fm.expr_kind == "blendshapes" else np.round(expr.astype(float), 4).tolist(),
            "activations": {k: round(v, 4) for k, v in act.items()},
            "id_coeffs": np.round(id_coeffs, 4).tolist(), "sh": np.round(sh.astype(float), 5).tolist(),
            "texel_mm": [round(du, 5), round(dv, 5)], "albedo_source": albedo_src, "view": pose,
            "occlusion": {"strength": self.occlusion_strength, "radius_mm": self.occlusion_radius_mm},
            "degradation": {"strength": self.degrade_strength, **deg},
            "wrinkles": [w.as_dict() for w in wrinkles],
        }
        return ScanSample(
            texture=_to_uint8(texture), displacement_mm=disp.astype(np.float32), mask=covered.copy(),
            visibility=vis[0, 0].numpy().astype(np.float32), position_mm=position.astype(np.float32),
            normal=n_map[0].permute(1, 2, 0).numpy().astype(np.float32), meta=meta, albedo=_to_uint8(albedo)), {
            "normal_detail": n_detail, "shading": shading, "occlusion": occlusion, "clean": clean, "albedo": albedo}


def _to_uint8(x: torch.Tensor) -> np.ndarray:
    return (x[0].permute(1, 2, 0).clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)


def default_albedo_dirs(shared_data_dir: str | os.PathLike | None) -> list[str]:
    """The labelled photos of the shared data kit (``<shared>/faces/labelled``) when present."""
    if not shared_data_dir:
        return []
    d = Path(shared_data_dir) / "faces" / "labelled"
    return [str(d)] if d.is_dir() else []


def _write_one(args: tuple[ProceduralScanGenerator, Path, int]) -> str:
    from fds.data.sample_io import write_sample

    gen, root, seed = args
    folder = root / f"proc_{seed:06d}"
    if not (folder / "sample.json").is_file():
        write_sample(folder, gen.generate(seed), overwrite=True)
    return folder.name


def write_procedural_samples(root: str | os.PathLike, num: int, generator: ProceduralScanGenerator,
                             start_seed: int = 0, workers: int = 0) -> list[Path]:
    """Write samples ``proc_<seed>`` for seeds ``start_seed … start_seed+num−1`` under ``root`` (each folder
    atomically; existing complete samples are kept, so an interrupted run resumes). ``workers`` > 0 uses a
    process pool. Returns the sample folders."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    jobs = [(generator, root, s) for s in range(int(start_seed), int(start_seed) + int(num))]
    if workers and workers > 0:
        import multiprocessing as mp

        generator.bank  # build the albedo bank once (cached on disk) so the workers only load it  # noqa: B018
        # spawn, not fork: a child forked after torch/OpenMP started its thread pool can hang forever
        with mp.get_context("spawn").Pool(int(workers)) as pool:
            names = list(progress(pool.imap(_write_one, jobs, chunksize=1), "scan generation", total=len(jobs),
                                  unit="scan"))
    else:
        names = [_write_one(j) for j in progress(jobs, "scan generation", unit="scan")]
    return [root / n for n in names]
