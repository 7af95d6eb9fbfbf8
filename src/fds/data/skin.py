"""Skin albedo for procedural scans: real photos unwrapped into UV, shading divided out, low-pass filtered.

Pipeline per photo (:func:`albedo_from_unwrap`): UV texture + visibility + proxy normals (camera frame) →
``fds.render.estimate_sh_and_albedo`` (order-2 SH lighting and a smooth albedo) → invisible texels filled
from the mirrored side of the chart and then by normalised convolution → Gaussian low-pass (σ = R/128) so
that no wrinkle shading of the source photo leaks into the albedo. :class:`AlbedoBank` caches the results
of a folder of photos as one ``.npz``; :func:`vary_albedo` adds per-sample colour variation, and
:func:`skin_pigment` (an option of the photo-level generator) the fine pigment the low-pass took away.

Unwrapping: photos with a same-stem iBUG ``.pts`` file are fitted with eos from those landmarks
(:func:`landmark_unwrap`, no detector needed); the proxy stage (``fds.proxy``) can be plugged in instead
through ``AlbedoBank.build(..., unwrap=...)``. Without any photo, :func:`flat_albedo` gives a documented
fallback: a skin tone from a small palette (sRGB, linear [0, 1]) with low-frequency mottling.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from fds.data.degrade import gaussian_blur
from fds.facemodel import FaceModel
from fds.facemodel.uvchart import UVChart
from fds.render import estimate_sh_and_albedo, vertex_normals

log = logging.getLogger(__name__)

#: Fallback skin tones (RGB in [0, 1]), light to dark.
SKIN_PALETTE = np.array([[0.87, 0.70, 0.60], [0.80, 0.62, 0.50], [0.72, 0.53, 0.42], [0.60, 0.42, 0.32],
                         [0.45, 0.30, 0.22], [0.33, 0.22, 0.16]], np.float32)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


@dataclass
class Unwrap:
    """A photo unwrapped into the UV chart: ``texture [R,R,3]`` in [0, 1], ``visibility [R,R]`` in [0, 1],
    proxy ``vertices_mm [V,3]`` (model frame) and ``rotation [3,3]`` model → camera."""

    texture: np.ndarray
    visibility: np.ndarray
    vertices_mm: np.ndarray
    rotation: np.ndarray


UnwrapFn = Callable[[Path, UVChart], Unwrap]


def project_unwrap(chart: UVChart, image: np.ndarray, vertices_mm: np.ndarray, modelview: np.ndarray,
                   projection: np.ndarray) -> Unwrap:
    """Sample ``image uint8 [H,W,3]`` at each texel's projected proxy point (eos ortho camera: pixel x =
    (x_ndc+1)/2·W, y = H − (y_ndc+1)/2·H). Visibility = facing the camera (no self-occlusion test)."""
    h, w = image.shape[:2]
    hv = np.c_[vertices_mm, np.ones(len(vertices_mm))]
    clip = (projection @ modelview @ hv.T).T
    px = np.stack([(clip[:, 0] + 1) / 2 * w, h - (clip[:, 1] + 1) / 2 * h], -1)
    uv_px = chart.interpolate(px)  # [R,R,2]
    grid = torch.from_numpy(np.stack([uv_px[..., 0] / w * 2 - 1, uv_px[..., 1] / h * 2 - 1], -1)).float()[None]
    img = torch.from_numpy(np.array(image)).float().permute(2, 0, 1)[None] / 255
    tex = F.grid_sample(img, grid, mode="bilinear", padding_mode="zeros", align_corners=False)[0].permute(1, 2, 0)
    rot = modelview[:3, :3].astype(np.float64)
    n = vertex_normals(torch.from_numpy(vertices_mm).float(), torch.from_numpy(chart.fm.triangles)).numpy()
    cos = chart.interpolate(n @ rot.T)[..., 2]
    inside = (grid[0].abs() <= 1).all(-1).numpy()
    vis = np.clip((cos - 0.15) / 0.3, 0, 1) * chart.covered * inside
    return Unwrap(tex.numpy() * (vis > 0)[..., None], vis.astype(np.float32), vertices_mm, rot)


def landmark_unwrap(photo: Path, chart: UVChart) -> Unwrap:
    """Fit ``chart.fm`` to the photo's same-stem ``.pts`` landmarks with eos and unwrap it."""
    import eos

    from fds.proxy.landmarks import load_image, read_pts

    fm = chart.fm
    pts_path = photo.with_suffix(".pts")
    if not pts_path.is_file():
        raise FileNotFoundError(f"{photo}: no landmark file {pts_path.name} beside it")
    image = load_image(photo)
    pts = read_pts(pts_path)
    lms = [eos.core.Landmark(str(i + 1), [float(x), float(y)]) for i, (x, y) in enumerate(pts)]
    h, w = image.shape[:2]
    mesh, pose, _, _ = eos.fitting.fit_shape_and_pose(
        fm.eos_model(), lms, fm.eos_landmark_mapper(), w, h, fm.eos_edge_topology(),
        fm.eos_contour_landmarks(), fm.eos_model_contour())
    verts = np.asarray(mesh.vertices, np.float64)
    return project_unwrap(chart, image, verts, np.asarray(pose.get_modelview(), np.float64),
                          np.asarray(pose.get_projection(), np.float64))


def fill_invisible(chart: UVChart, rgb: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Fill texels of low ``weight [R,R]`` from the mirrored texel (landmark-frame x → −x), then by
    normalised convolution; returns ``[R,R,3]`` defined on the whole chart."""
    r = chart.resolution
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float()
    m = torch.from_numpy(weight)[None, None].float()
    mirrored = torch.flip(x, dims=[3]), torch.flip(m, dims=[3])  # the SFM-style chart is left-right symmetric
    x = m * x + (1 - m) * mirrored[1] * mirrored[0]
    m = (m + (1 - m) * mirrored[1]).clamp(0, 1)
    for sigma in (r / 64, r / 16, r / 4):
        filled = gaussian_blur(x * m, sigma) / gaussian_blur(m, sigma).clamp_min(1e-6)
        have = gaussian_blur(m, sigma) > 1e-3
        x = torch.where((m > 0.5) | ~have, x, filled)
        m = torch.maximum(m, have.float())
    return x[0].permute(1, 2, 0).numpy()


def albedo_from_unwrap(chart: UVChart, un: Unwrap) -> np.ndarray:
    """Low-pass albedo ``[R,R,3]`` in [0, 1] with the photo's SH shading divided out (see module doc)."""
    r = chart.resolution
    n = vertex_normals(torch.from_numpy(un.vertices_mm).float(), torch.from_numpy(chart.fm.triangles)).numpy()
    n_cam = torch.from_numpy(chart.interpolate(n @ un.rotation.T)).permute(2, 0, 1)[None]
    image = torch.from_numpy(un.texture).permute(2, 0, 1)[None].float()
    mask = torch.from_numpy(un.visibility)[None, None].float()
    mask = mask * (image.mean(1, keepdim=True) > 0.03)  # ignore clipped-black texels
    _, albedo = estimate_sh_and_albedo(image, n_cam.float(), mask, sigma_px=r / 64)
    albedo_np = albedo[0].permute(1, 2, 0).numpy()
    med = np.median(albedo_np[mask[0, 0].numpy() > 0.5], axis=0)
    albedo_np = np.clip(albedo_np, 0.3 * med, np.minimum(1.0, 2.5 * med))
    filled = fill_invisible(chart, albedo_np, (mask[0, 0].numpy() > 0.5).astype(np.float32))
    low = gaussian_blur(torch.from_numpy(filled).permute(2, 0, 1)[None], r / 128)[0].permute(1, 2, 0).numpy()
    return np.clip(low, 0, 1).astype(np.float32)


def find_photos(folders: Sequence[str | os.PathLike], with_landmarks: bool = False) -> list[Path]:
    """Image files under ``folders`` (recursive, sorted); only those with a same-stem ``.pts`` if asked."""
    out: list[Path] = []
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir():
            continue
        for p in sorted(folder.rglob("*")):
            if p.suffix.lower() in IMAGE_SUFFIXES and (not with_landmarks or p.with_suffix(".pts").is_file()):
                out.append(p)
    return out


class AlbedoBank:
    """Albedo maps ``float16 [N,R,R,3]`` from photos, cached as ``<cache_dir>/albedo_bank_<key>.npz``."""

    def __init__(self, albedo: np.ndarray, sources: list[str]) -> None:
        self.albedo, self.sources = albedo, sources

    def __len__(self) -> int:
        return len(self.albedo)

    @classmethod
    def build(cls, fm: FaceModel, photos: Sequence[Path], resolution: int = 256,
              cache_dir: str | os.PathLike | None = None, unwrap: UnwrapFn = landmark_unwrap) -> AlbedoBank:
        """Unwrap ``photos`` (skipping and logging failures) or load the cached bank of the same inputs."""
        from fds.facemodel.uvchart import uv_chart

        key = hashlib.sha1(("|".join(map(str, photos)) + f"|{resolution}|{fm.fingerprint()}").encode())
        path = Path(cache_dir) / f"albedo_bank_{key.hexdigest()[:12]}.npz" if cache_dir else None
        if path is not None and path.is_file():
            with np.load(path) as z:
                return cls(z["albedo"], [str(s) for s in z["sources"]])
        chart = uv_chart(fm, resolution)
        maps, used = [], []
        for p in photos:
            try:
                maps.append(albedo_from_unwrap(chart, unwrap(Path(p), chart)).astype(np.float16))
                used.append(str(p))
            except Exception as exc:  # a photo that cannot be unwrapped is skipped, never fatal
                log.warning("albedo bank: skipped %s (%s)", p, exc)
        if not maps:
            raise RuntimeError(f"albedo bank: none of {len(photos)} photos could be unwrapped")
        bank = cls(np.stack(maps), used)
        if path is not None:
            from fds.data.sample_io import atomic_save_npz

            atomic_save_npz(path, albedo=bank.albedo, sources=np.array(used))
        return bank

    def sample(self, rng: np.random.Generator) -> tuple[np.ndarray, str]:
        i = int(rng.integers(len(self)))
        return self.albedo[i].astype(np.float32), self.sources[i]


def flat_albedo(rng: np.random.Generator, resolution: int) -> np.ndarray:
    """Fallback albedo ``[R,R,3]``: a palette skin tone (jittered) — used when no photo is available."""
    tone = SKIN_PALETTE[int(rng.integers(len(SKIN_PALETTE)))] * rng.uniform(0.9, 1.1, 3)
    return np.broadcast_to(tone.astype(np.float32), (resolution, resolution, 3)).copy()


def vary_albedo(rng: np.random.Generator, albedo: np.ndarray, resolution: int) -> np.ndarray:
    """Per-sample colour variation: random mirror, per-channel gain, brightness, saturation and
    low-frequency mottling; resized (bilinear) to ``resolution``. Returns ``[R,R,3]`` in [0, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(albedo)).permute(2, 0, 1)[None].float()
    if rng.random() < 0.5:
        x = torch.flip(x, dims=[3])
    x = F.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False)
    gain = torch.from_numpy((rng.uniform(0.92, 1.08, 3) * rng.uniform(0.8, 1.2)).astype(np.float32))
    x = x * gain.view(1, 3, 1, 1)
    grey = x.mean(1, keepdim=True)
    x = grey + (x - grey) * float(rng.uniform(0.8, 1.2))
    mottle = torch.from_numpy(rng.standard_normal((1, 1, 8, 8)).astype(np.float32))
    mottle = F.interpolate(mottle, size=(resolution, resolution), mode="bicubic", align_corners=False)
    x = x * (1 + float(rng.uniform(0.0, 0.04)) * mottle)
    return x[0].permute(1, 2, 0).clamp(0, 1).numpy()


#: How much melanin darkens each sRGB channel relative to blue (it absorbs blue and green more than red), and how
#: much haemoglobin does (it absorbs green most). Applied as ``albedo · exp(−density · weight)``.
MELANIN_RGB = np.array([0.55, 0.8, 1.0], np.float32)
HAEMOGLOBIN_RGB = np.array([0.15, 1.0, 0.6], np.float32)


def _unit_noise(rng: np.random.Generator, covered: np.ndarray, sigma_texels: tuple[float, float]) -> np.ndarray:
    """White noise Gaussian-filtered at ``(σ_rows, σ_cols)`` texels, scaled to unit RMS over ``covered``."""
    n = ndimage.gaussian_filter(rng.standard_normal(covered.shape).astype(np.float32), sigma_texels)
    rms = float(np.sqrt(np.mean(n[covered] ** 2))) if covered.any() else 1.0
    return n / max(rms, 1e-12)


def skin_pigment(rng: np.random.Generator, albedo: np.ndarray, covered: np.ndarray,
                 texel_mm: tuple[float, float]) -> tuple[np.ndarray, dict]:
    """Fine pigment texture of real skin painted into a low-pass bank albedo (colour only: the relief is untouched).

    The bank's albedo is low-passed (σ = R/128) so that no wrinkle of its source photo leaks in; that leaves the
    skin without the uneven colour a real face has at millimetre scale, so every fine brightness change in a
    training photo is relief. Real skin (and the albedo of a scanned head) also shows melanin mottling,
    lentigines/freckles and redness. Per head:

    - melanin mottle: a signed field, the sum of Gaussian-filtered noise at σ 0.4, 1 and 2.5 mm, RMS 1–5 %;
    - redness: a signed field at σ 1.5–4 mm, RMS 0–3 %, in haemoglobin's colour;
    - on 40 % of heads, 30–400 freckles: Gaussian spots of σ 0.3–1.2 mm darkening 5–30 % at their centre.

    ``albedo [R,R,3]`` sRGB in [0, 1]; ``covered [R,R]`` the chart's texels; ``texel_mm`` (du, dv) mm per texel
    along columns and rows. Returns the new albedo (float32) and a description (RMS and counts).
    """
    du, dv = float(texel_mm[0]), float(texel_mm[1])

    def sig(mm: float) -> tuple[float, float]:  # (rows, cols) texels of a length in mm
        return mm / dv, mm / du

    weights = rng.dirichlet(np.ones(3))
    mottle = sum(w * _unit_noise(rng, covered, sig(s)) for w, s in zip(weights, (0.4, 1.0, 2.5), strict=True))
    mottle_rms = float(rng.uniform(0.01, 0.05))
    melanin = mottle / max(float(np.sqrt(np.mean(mottle[covered] ** 2))), 1e-12) * mottle_rms
    red_rms = float(rng.uniform(0.0, 0.03))
    redness = _unit_noise(rng, covered, sig(float(rng.uniform(1.5, 4.0)))) * red_rms
    n_freckles = int(rng.integers(30, 401)) if rng.random() < 0.4 else 0
    if n_freckles:
        rows, cols = np.nonzero(covered)
        pick = rng.integers(len(rows), size=n_freckles)
        sigma_mm = rng.uniform(0.3, 1.2, n_freckles)
        depth = rng.uniform(0.05, 0.3, n_freckles)
        edges = np.array([0.3, 0.6, 0.9, 1.2 + 1e-6])  # spots grouped by σ, one filter per group
        for lo, hi in zip(edges[:-1], edges[1:], strict=True):
            k = (sigma_mm >= lo) & (sigma_mm < hi)
            if not k.any():
                continue
            s = sig(0.5 * (lo + hi))
            impulses = np.zeros(covered.shape, np.float32)
            np.add.at(impulses, (rows[pick[k]], cols[pick[k]]), depth[k] * 2 * np.pi * s[0] * s[1])
            melanin = melanin + ndimage.gaussian_filter(impulses, s)  # peak ≈ depth (density units)
    density = melanin[..., None] * MELANIN_RGB + redness[..., None] * HAEMOGLOBIN_RGB
    out = np.where(covered[..., None], albedo * np.exp(-density), albedo)
    info = {"mottle_rms": round(mottle_rms, 4), "redness_rms": round(red_rms, 4), "freckles": n_freckles}
    return np.clip(out, 0, 1).astype(np.float32), info
