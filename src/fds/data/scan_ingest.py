"""Textured scans → photo-level samples on the same path as the synthetic heads (``fds.data.photo_scans``).

A scan is a mesh (OBJ, or PLY/glTF through trimesh) with UVs, an albedo image laid out in those UVs, and
optionally a displacement map (float ``.npy``/``.npz`` in the scan's unit, heights along the mesh normal) or a
tangent-space normal map (PNG, OpenGL green-up). **Units must be given** (``mm``, ``cm`` or ``m``); there is no
default. The scan must face +z with y up (the face model's frame).

Each scan is rendered as ``photos`` photos (``fds.data.photo_render``: random pose, lights, background, camera),
each photo runs through the real proxy stage, and the GT detail is expressed in the fitted proxy's UV by
``fds.data.raycast_gt``. The detail is measured against the scan's own smooth surface:

* **displacement map**: the mesh is the smooth surface, the map the detail (heights along the mesh normal);
* **normal map**: integrated to heights (:func:`integrate_normal_map`, the paper's least-squares integration
  with μ = 1e-5) and then used as a displacement map; the photos are shaded with the normal map itself;
* **mesh only**: the mesh is the detailed surface; its smooth reference is the face model refitted in 3D to the
  scan points the texels show (``fds.data.model_refit.refit_model``). A smoothing of the scan mesh itself
  (heat diffusion, a second pass cancelling its shrinkage) was measured on a synthetic head and rejected: the face's own
  curvature (nose, lips, eyes) has relief at the 4 mm band's scale that no smoothing separates from wrinkles
  (band-passed heights 1.5–5× the relief's RMS off for σ = 4–12 mm). The refit keeps the model's limits: shape
  the model cannot express (≈ mm, mid-frequency) stays in a real scan's GT.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from fds.mesh.meshdata import MeshData, read_obj

log = logging.getLogger(__name__)

#: Length units a scan may be given in → millimetres per unit.
UNITS_MM = {"mm": 1.0, "cm": 10.0, "m": 1000.0}


class ScanInputError(ValueError):
    """A scan cannot be ingested; the message names the file and what to do."""


@dataclass
class TexturedScan:
    """A scan in mm with its maps at ``resolution`` (UV image convention, row 0 = v 0)."""

    path: Path
    mesh: MeshData  # mm, per-corner UVs
    albedo: np.ndarray  # float32 [R, R, 3] sRGB in [0, 1]
    displacement_mm: np.ndarray | None  # float32 [R, R]
    normal_map: np.ndarray | None  # float32 [R, R, 3] tangent space, unit


def read_mesh(path: Path) -> MeshData:
    """OBJ (fds reader) or PLY/glTF/GLB (trimesh, per-vertex UVs)."""
    if path.suffix.lower() == ".obj":
        return read_obj(path)
    try:
        import trimesh
    except ImportError as exc:  # pragma: no cover
        raise ScanInputError(f"{path}: reading {path.suffix} needs trimesh (pip install trimesh); or give an OBJ"
                             ) from exc
    tm: Any = trimesh.load(path, force="mesh", process=False)  # a trimesh.Trimesh (force="mesh")
    uv = getattr(getattr(tm, "visual", None), "uv", None)
    tri = np.asarray(tm.faces, np.int32)
    if uv is None or len(uv) != len(tm.vertices):
        return MeshData(np.asarray(tm.vertices, np.float32), tri)
    uv = np.stack([uv[:, 0], 1.0 - uv[:, 1]], 1).astype(np.float32)
    return MeshData(np.asarray(tm.vertices, np.float32), tri, uv, tri.copy())


def load_scan(mesh_path: str | os.PathLike, albedo_path: str | os.PathLike, units: str | None,
              displacement_path: str | os.PathLike | None = None, normal_map_path: str | os.PathLike | None = None,
              resolution: int = 1024) -> TexturedScan:
    """Read and check one scan (module doc); any problem raises :class:`ScanInputError` naming the file."""
    from PIL import Image

    from fds.proxy.landmarks import ImageReadError, load_image

    path = Path(mesh_path)
    if units not in UNITS_MM:
        raise ScanInputError(f"{path}: unknown units {units!r}; say what one mesh unit is: one of "
                             f"{', '.join(UNITS_MM)} (there is no default)")
    if not path.is_file():
        raise ScanInputError(f"{path}: file not found")
    try:
        mesh = read_mesh(path)
    except ValueError as exc:
        raise ScanInputError(f"{path}: not a readable mesh ({exc})") from exc
    if mesh.uv is None:
        raise ScanInputError(f"{path}: the mesh has no UV coordinates; ingestion needs the UVs its albedo (and "
                             "displacement) maps are laid out in — export the scan with its texture coordinates")
    mesh = MeshData(mesh.vertices * UNITS_MM[units], mesh.triangles, mesh.uv, mesh.uv_triangles)

    def image(p, name: str) -> np.ndarray:
        try:
            img = load_image(p)
        except ImageReadError as exc:
            raise ScanInputError(f"{p}: the {name} is not a readable image ({exc})") from exc
        return np.asarray(Image.fromarray(img).resize((resolution, resolution), Image.Resampling.BILINEAR),
                          np.float32) / 255

    albedo = image(albedo_path, "albedo")
    disp = None
    if displacement_path is not None:
        dp = Path(displacement_path)
        if dp.suffix.lower() not in (".npy", ".npz"):
            raise ScanInputError(f"{dp}: give the displacement map as a float .npy/.npz in the mesh's unit "
                                 "(an image holds no physical scale)")
        arr = np.load(dp)
        arr = arr[arr.files[0]] if isinstance(arr, np.lib.npyio.NpzFile) else arr
        if arr.ndim != 2 or not np.isfinite(arr).all():
            raise ScanInputError(f"{dp}: the displacement map must be a finite [H, W] array, got {arr.shape}")
        t = torch.from_numpy(np.asarray(arr, np.float32))[None, None]
        disp = F.interpolate(t, size=(resolution, resolution), mode="bilinear", align_corners=False)[0, 0].numpy()
        disp = disp * UNITS_MM[units]
    normal = None
    if normal_map_path is not None:
        normal = image(normal_map_path, "normal map") * 2 - 1
        normal /= np.maximum(np.linalg.norm(normal, axis=-1, keepdims=True), 1e-6)
    return TexturedScan(path, mesh, albedo, disp, normal)


def integrate_normal_map(normal_ts: np.ndarray, covered: np.ndarray, texel_mm: tuple[float, float],
                         mu: float = 1e-5, min_nz: float = 0.1) -> np.ndarray:
    """Heights ``[R, R]`` (mm, along the surface normal) whose normals are the tangent-space normal map
    ``normal_ts [R, R, 3]`` (``fds.render.normals`` convention: x along u, y up the map, green up), on the chart
    texels ``covered [R, R]`` of metric size ``texel_mm = (du, dv)``.

    The paper's integration (§3): minimise Σ (∇h − g)² + μ Σ h² over the whole map with the slopes
    g = (−du·n_x/n_z, +dv·n_y/n_z) mm per texel (forward differences against the mean slope of the two
    texels), 0 off the chart and where n_z < ``min_nz``; μ = 1e-5 per texel² as the paper's detailed surface. The
    normal equations (−Δ + μ) h = −div g with Neumann borders are diagonal in the DCT-II basis, so the exact
    least-squares solution costs two FFTs. Relief finer than a texel and the map's 8-bit steps come back as
    they are; chart seams inside the map (slopes that disagree across a cut) leave a smooth error that the GT's
    band-pass removes."""
    from scipy.fft import dctn, idctn

    n = np.asarray(normal_ts, np.float64)
    du, dv = texel_mm
    ok = np.asarray(covered, bool) & (n[..., 2] >= min_nz)
    nz = np.where(ok, n[..., 2], 1.0)
    gx = np.where(ok, -du * n[..., 0] / nz, 0.0)  # ∂h/∂column, mm per texel
    gy = np.where(ok, dv * n[..., 1] / nz, 0.0)  # ∂h/∂row (rows run down, the bitangent up)
    hx = 0.5 * (gx[:, 1:] + gx[:, :-1])  # [R, R−1] slope between columns c and c+1
    hy = 0.5 * (gy[1:] + gy[:-1])  # [R−1, R]
    b = np.zeros_like(gx)  # Dᵀ g
    b[:, :-1] -= hx
    b[:, 1:] += hx
    b[:-1] -= hy
    b[1:] += hy
    rows, cols = gx.shape
    lam = (4 * np.sin(np.pi * np.arange(rows) / (2 * rows)) ** 2)[:, None] + \
        (4 * np.sin(np.pi * np.arange(cols) / (2 * cols)) ** 2)[None]
    return idctn(dctn(b, type=2, norm="ortho") / (lam + mu), type=2, norm="ortho").astype(np.float32)


def scan_head(scan: TexturedScan, resolution: int) -> dict:
    """The ``head`` dict ``fds.data.photo_render.render_photo`` draws, for a scan in its own UV chart."""
    from fds.render import (
        interpolate,
        normals_from_displacement,
        rasterize_uv,
        tangent_frames,
        tangent_to_object,
        vertex_normals,
    )

    m = scan.mesh
    v = torch.from_numpy(np.asarray(m.vertices, np.float32))
    tri = torch.from_numpy(np.asarray(m.triangles, np.int64))
    uv = torch.from_numpy(np.asarray(m.uv, np.float32))
    uv_tri = torch.from_numpy(np.asarray(m.uv_triangles, np.int64))
    n_v = vertex_normals(v, tri)
    t_v, b_v, _ = tangent_frames(v, uv, tri, uv_tri)
    rast = rasterize_uv(uv, uv_tri, (resolution, resolution), backend="torch")
    covered = (rast[0, ..., 3] > 0).numpy()
    corner_v = torch.zeros(len(uv), dtype=torch.int64)
    corner_v[uv_tri.reshape(-1)] = tri.reshape(-1)  # the vertex of each UV

    def to_map(a: torch.Tensor, unit: bool = True) -> torch.Tensor:  # [V, C] → [1, C, R, R]
        out = interpolate(a[corner_v], rast, uv_tri)[0].permute(2, 0, 1)[None]
        return F.normalize(out, dim=1) if unit else out

    pos = to_map(v, unit=False)[0].permute(1, 2, 0).numpy()
    ok = covered[:, 1:] & covered[:, :-1]
    du = float(np.median(np.linalg.norm(np.diff(pos, axis=1), axis=-1)[ok]))
    ok = covered[1:] & covered[:-1]
    dv = float(np.median(np.linalg.norm(np.diff(pos, axis=0), axis=-1)[ok]))
    n_map, t_map, b_map = to_map(n_v), to_map(t_v), to_map(b_v)
    disp = scan.displacement_mm
    source: str | None = "displacement map"
    if disp is None and scan.normal_map is not None:  # the normal map's relief as heights, for the GT
        disp, source = integrate_normal_map(scan.normal_map, covered, (du, dv)), "normal map (integrated)"
    if disp is None:
        disp, source = np.zeros((resolution, resolution), np.float32), None
    if scan.displacement_mm is not None:
        n_ts = normals_from_displacement(torch.from_numpy(disp)[None, None], (du, dv))
    elif scan.normal_map is not None:
        n_ts = torch.from_numpy(scan.normal_map).permute(2, 0, 1)[None]
    else:
        n_ts = torch.tensor([0.0, 0.0, 1.0]).view(1, 3, 1, 1).expand(1, 3, resolution, resolution)
    cov_t = torch.from_numpy(covered)[None, None].float()
    n_detail = tangent_to_object(n_ts.float(), t_map, b_map, n_map, dim=1) * cov_t
    return {"vertices": np.asarray(m.vertices, np.float32), "displacement_mm": np.where(covered, disp, 0),
            "covered": covered, "texel_mm": (du, dv), "normal": n_map, "normal_detail": n_detail,
            "albedo": torch.from_numpy(scan.albedo).permute(2, 0, 1)[None], "marks": {}, "detail_source": source}


def ingest_scan(scan: TexturedScan, generator, out_root: str | os.PathLike, photos: int = 3, seed: int = 0,
                resolution: int | None = None) -> tuple[list[Path], list[str]]:
    """Render ``photos`` photos of ``scan``, run the proxy stage and write one sample folder per usable photo
    (``scan_<stem>_<k>``, atomically). ``generator`` is a :class:`fds.data.photo_scans.PhotoScanGenerator`
    (its proxy stage, backgrounds, photo settings, band). Returns (written folders, skip reasons naming the file)."""
    from fds.data.photo_render import render_photo
    from fds.data.photo_scans import PhotoSample, SkippedPhoto, check_detection, write_photo_sample
    from fds.data.raycast_gt import fitted_gt
    from fds.data.sample_io import ScanSample
    from fds.proxy.landmarks import NoFaceError

    r_gt = scan.albedo.shape[0]
    head = scan_head(scan, r_gt)
    regions = np.where(head["covered"], 255, 0).astype(np.uint8)  # a scan has no region labels: 255 = face
    written, skipped = [], []
    res = resolution or generator.resolution
    for k in range(photos):
        name = f"{scan.path.name} photo {k}"
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), k]))
        photo = render_photo(rng, scan.mesh, head, regions, generator.backgrounds, generator.photo_config)
        try:
            try:
                proxy = generator.stage.process(photo.image, name)[0]
            except NoFaceError as exc:
                raise SkippedPhoto(f"{name}: no face found ({exc})") from exc
            check_detection(photo, proxy, name)
            detail = head["displacement_mm"] if head["detail_source"] else None  # None: mesh-only, model refit
            gt = fitted_gt(photo, proxy, generator.fm, res, detail, generator.band_sigma_mm)
        except (SkippedPhoto, ValueError) as exc:
            skipped.append(str(exc))
            log.warning("ingest: skipped %s", exc)
            continue
        meta = {"source": "scan", "scan": scan.path.name, "photo_index": k, "seed": int(seed),
                "detail_source": head["detail_source"] or "mesh (face model refit as the smooth reference)",
                "face_model": generator.fm.name, "texel_mm": [round(v, 5) for v in gt.texel_mm],
                "photo": {"camera": photo.camera.to_dict(), **photo.params}, "gt": gt.stats,
                "proxy": {"detector": proxy.detector, "yaw_pitch_roll_deg": list(proxy.fit.yaw_pitch_roll_deg),
                          "reprojection_error_px": round(float(proxy.fit.reprojection_error_px), 3)}}
        sample = ScanSample(texture=np.asarray(proxy.uv.texture), displacement_mm=gt.displacement_mm, mask=gt.mask,
                            visibility=np.asarray(proxy.uv.confidence, np.float32), position_mm=gt.position_mm,
                            normal=gt.normal, meta=meta)
        folder = Path(out_root) / f"scan_{scan.path.stem}_{k}"
        written.append(write_photo_sample(folder, PhotoSample(sample, photo, proxy, gt, meta)))
    return written, skipped
