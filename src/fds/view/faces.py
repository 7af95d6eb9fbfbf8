"""What the viewer shows, as plain arrays: the faces of an inference run and their display meshes.

A face folder is what :mod:`fds.pipeline` writes (``proxy.obj``, ``texture.png``, ``displacement.*``,
``normal_tangent.png``, ``result.json``). The viewer never reads ``detailed.obj``/``.ply`` (1.7M triangles,
~120 MB at the default settings): it rebuilds the detailed surface the way :mod:`fds.mesh.bake` does
(1→4 subdivision of the proxy, displaced along the interpolated smooth normals by the displacement map), only
with fewer subdivision levels, so a display mesh has at most ``max_triangles`` triangles and the
displacement can be rescaled at any time (``vertices(scale)``) without touching a file.

One difference: browsers shade with normals computed from the triangles (the viser client recomputes them
for every glTF), and the midpoint-subdivided proxy is flat on each of its 6,736 triangles, so its facets
would show through the relief. The display base surface is therefore the proxy's Phong tessellation
(Boubekeur & Alexa 2008, α = 3/4): each subdivided point moves towards the tangent planes of its triangle's
corners, a smooth surface through the proxy's vertices that differs from the flat one by a fraction of a mm.
The same base is used for the proxy and the detailed view, so what differs between them is the displacement.

Units: the files are in mm (model frame: x right, y up, z toward the viewer); display meshes are in metres,
centred on the proxy's bounding-box centre, as glTF and the viewer expect.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fds.export.maps import read_displacement, read_png
from fds.mesh.bake import bake_displacement, subdivide, subdivision_levels
from fds.mesh.meshdata import MeshData, read_obj, split_seams

#: triangles of a display mesh: SFM's 6,736 · 4³ = 431k (each edge ~2 texels of a 1024² map); the files
#: written by infer.py have 4⁴ (1.72M), which software WebGL draws at a few frames per second.
DISPLAY_MAX_TRIANGLES = 450_000
PHONG_ALPHA = 0.75  # Phong tessellation's shape factor (the paper's default)
FACE_FILES = ("result.json", "proxy.obj")


def find_faces(folder: str | Path) -> list[Path]:
    """The face folders of ``folder``: itself when it is one, else its sub-folders that are (sorted by name).

    An inference run's output folder (with ``summary.json``) or one face's folder both work.
    """
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder: give an inference output folder (fds infer -o DIR) "
                                "or one face's folder inside it")
    if all((folder / f).is_file() for f in FACE_FILES):
        return [folder]
    faces = sorted(p for p in folder.iterdir() if p.is_dir() and all((p / f).is_file() for f in FACE_FILES))
    if not faces:
        raise FileNotFoundError(f"{folder} holds no face outputs (folders with {' and '.join(FACE_FILES)}): "
                                "run `fds infer PHOTO -o DIR` first and view DIR")
    return faces


@dataclass
class DisplayMesh:
    """A triangle soup ready for glTF: one vertex per distinct (position, UV) pair, metres.

    ``base [N, 3]`` the subdivided proxy surface, ``normals [N, 3]`` unit displacement directions,
    ``disp_mm [N]`` the displacement map sampled at each vertex, ``uv [N, 2]`` image convention (v down),
    ``triangles [T, 3]``, ``weld [N]`` the welded vertex each one copies (for seam-free shading normals).
    """

    base: np.ndarray
    normals: np.ndarray
    disp_mm: np.ndarray
    uv: np.ndarray
    triangles: np.ndarray
    weld: np.ndarray
    levels: int

    def vertices(self, scale: float = 1.0) -> np.ndarray:
        """Positions ``[N, 3]`` (m) with the displacement multiplied by ``scale`` (0 = the proxy surface)."""
        return (self.base + (scale * self.disp_mm / 1000.0)[:, None] * self.normals).astype(np.float32)

    def shading_normals(self, scale: float = 1.0) -> np.ndarray:
        """Unit shading normals ``[N, 3]`` of ``vertices(scale)``: the proxy's smooth normals tilted by the
        relief, n = normalise(n_smooth + n_geo(displaced) − n_geo(base)), so the proxy's own facets (flat
        triangles under the subdivision) do not show and scale 0 gives exactly the smooth proxy shading."""
        n = self.normals.astype(np.float64)
        if scale != 0.0:
            n = n + self._geometric_normals(self.vertices(scale)) - self._geometric_normals(self.base)
        return (n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)).astype(np.float32)

    def _geometric_normals(self, vertices: np.ndarray) -> np.ndarray:
        """Area-weighted unit vertex normals ``[N, 3]`` of ``vertices``, shared across UV seams."""
        v = np.asarray(vertices, np.float64)
        t = self.triangles
        face = np.cross(v[t[:, 1]] - v[t[:, 0]], v[t[:, 2]] - v[t[:, 0]])  # [T, 3], |.| = 2·area
        corners = self.weld[t].reshape(-1)  # [3T] welded vertex of each corner
        size = int(self.weld.max()) + 1
        acc = np.stack([np.bincount(corners, np.repeat(face[:, k], 3), minlength=size) for k in range(3)], 1)
        n = acc[self.weld]
        return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)


@dataclass
class FaceData:
    """One face's files, loaded: ``proxy`` (mm), ``displacement_mm [R, R]``, uint8 ``texture``/``normal_map``
    ``[H, W, 3]`` (None when missing), ``result`` (``result.json``)."""

    name: str
    folder: Path
    proxy: MeshData
    displacement_mm: np.ndarray
    texture: np.ndarray | None
    normal_map: np.ndarray | None
    result: dict[str, Any]

    @property
    def centre_mm(self) -> np.ndarray:
        v = np.asarray(self.proxy.vertices, np.float64)
        return (v.min(0) + v.max(0)) / 2

    def display_mesh(self, max_triangles: int = DISPLAY_MAX_TRIANGLES) -> DisplayMesh:
        """The detailed surface at display density (≤ ``max_triangles``), centred, in metres."""
        levels = subdivision_levels(self.proxy, self.displacement_mm.shape[0], max_triangles=max_triangles)
        baked = bake_displacement(self.proxy, self.displacement_mm, levels=levels)
        smooth = phong_tessellation(self.proxy, baked.base_vertices, levels)
        vertex_of, uv, tri, _ = split_seams(baked.mesh)
        base = (smooth[vertex_of] - self.centre_mm) / 1000.0
        return DisplayMesh(base.astype(np.float32), baked.normals[vertex_of], baked.displacement_mm[vertex_of],
                           uv.astype(np.float32), tri.astype(np.int64), vertex_of.astype(np.int64), levels)


def phong_tessellation(proxy: MeshData, fine_vertices: np.ndarray, levels: int,
                       alpha: float = PHONG_ALPHA) -> np.ndarray:
    """The points of ``subdivide(proxy, levels)`` (``fine_vertices [V', 3]`` mm) moved onto the proxy's Phong
    tessellation: p* = p − α Σᵢ bᵢ ((p − vᵢ)·nᵢ) nᵢ over the corners vᵢ (unit smooth normals nᵢ) of the proxy
    triangle holding p with barycentrics bᵢ. Written as p − α (M p − c) with M = Σ bᵢ nᵢnᵢᵀ and
    c = Σ bᵢ (vᵢ·nᵢ) nᵢ, both linear in the corners, so ``subdivide`` interpolates them exactly."""
    import torch

    from fds.render import vertex_normals

    v0 = np.asarray(proxy.vertices, np.float64)
    n0 = vertex_normals(torch.from_numpy(v0.astype(np.float32)),
                        torch.from_numpy(np.asarray(proxy.triangles, np.int64))).numpy().astype(np.float64)
    attrs = np.concatenate([(n0[:, :, None] * n0[:, None, :]).reshape(-1, 9), (v0 * n0).sum(1, keepdims=True) * n0],
                           axis=1)  # [V, 12]
    _, a = subdivide(MeshData(v0, proxy.triangles), levels, attrs)
    p = np.asarray(fine_vertices, np.float64)
    m, c = a[:, :9].reshape(-1, 3, 3), a[:, 9:]
    return (p - alpha * (np.einsum("vij,vj->vi", m, p) - c)).astype(np.float32)


def _image(path: Path) -> np.ndarray | None:
    if not path.is_file():
        return None
    im = read_png(path)
    if im.ndim == 2:
        im = np.repeat(im[..., None], 3, axis=2)
    return im[..., :3].astype(np.uint8)


def load_face(folder: str | Path) -> FaceData:
    """Read one face folder written by the pipeline. Missing or unreadable files give an error naming them."""
    folder = Path(folder)
    try:
        result = json.loads((folder / "result.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{folder / 'result.json'}: unreadable ({exc}); rerun fds infer on this photo") from exc
    proxy = read_obj(folder / "proxy.obj")
    if proxy.uv is None:
        raise ValueError(f"{folder / 'proxy.obj'} has no UVs: not a proxy written by fds")
    disp, _ = read_displacement(folder / "displacement")
    return FaceData(folder.name, folder, proxy, disp, _image(folder / "texture.png"),
                    _image(folder / "normal_tangent.png"), result)


def heat_map(displacement_mm: np.ndarray, limit_mm: float | None = None) -> tuple[np.ndarray, float]:
    """Displacement ``[R, R]`` mm → (uint8 RGB ``[R, R, 3]``, limit): blue = inward, white = 0, red = outward,
    saturated at ±``limit`` (default: the 99th percentile of |d| over texels with detail)."""
    from matplotlib import colormaps

    d = np.asarray(displacement_mm, np.float32)
    if limit_mm is None:
        nz = np.abs(d[d != 0])
        limit_mm = float(np.percentile(nz, 99)) if nz.size else 1.0
    limit_mm = max(limit_mm, 1e-6)
    rgb = colormaps["RdBu_r"](np.clip(d / limit_mm * 0.5 + 0.5, 0, 1))[..., :3]
    return (rgb * 255 + 0.5).astype(np.uint8), limit_mm


def summary_markdown(face: FaceData, display: DisplayMesh | None = None) -> str:
    """The per-face numbers of ``result.json`` as a short Markdown table."""
    r = face.result
    rows: list[tuple[str, str]] = []
    if "reprojection_error_px" in r:
        rows.append(("landmark reprojection", f"{r['reprojection_error_px']:.2f} px"))
    if "yaw_pitch_roll_deg" in r:
        rows.append(("yaw / pitch / roll", " / ".join(f"{a:.1f}°" for a in r["yaw_pitch_roll_deg"])))
    if r.get("emotion"):
        top = max(r["emotion"].items(), key=lambda kv: kv[1])
        rows.append(("emotion", f"{top[0]} ({top[1]:.0%})"))
    if "expression_mode" in r:
        rows.append(("expression", str(r["expression_mode"])))
    d = r.get("displacement_mm", {})
    if d:
        rows.append(("displacement", f"{d.get('min', 0):+.3f} … {d.get('max', 0):+.3f} mm"))
        rows.append(("map coverage", f"{d.get('coverage', 0):.0%}"))
    m = r.get("detailed_mesh", {})
    if m:
        rows.append(("detailed mesh (files)", f"{m.get('triangles', 0):,} triangles"))
    if display is not None:
        rows.append(("shown here", f"{len(display.triangles):,} triangles ({display.levels} subdivisions)"))
    t = r.get("timings_s", {})
    if t:
        rows.append(("time", f"{sum(t.values()):.1f} s"))
    text = f"**{face.name}**\n\n| | |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in rows)
    for w in r.get("warnings", []):
        text += f"\n\n⚠ {w}"
    return text
