"""Triangle meshes: the ``MeshData`` container, reading one from a Wavefront OBJ, splitting UV seams.

UV convention inside fds is the image one: ``u`` → column / width, ``v`` → row / height, ``v = 0`` at the top
row of a UV map. OBJ stores ``vt`` with ``v = 0`` at the bottom, so :func:`read_obj` takes ``v = 1 - vt``
(the writer, :mod:`fds.export.mesh_io`, the inverse).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class MeshData:
    """A triangle mesh. ``vertices [V,3]`` (units are the caller's, fds uses mm), ``triangles [T,3]`` int,
    optional per-corner UVs ``uv [U,2]`` (image convention) indexed by ``uv_triangles [T,3]``."""

    vertices: np.ndarray
    triangles: np.ndarray
    uv: np.ndarray | None = None
    uv_triangles: np.ndarray | None = None


def split_seams(mesh: MeshData) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One vertex per distinct (vertex, UV) pair, for formats with per-vertex UVs.

    Returns (``vertex_of [N]`` source vertex index, ``uv [N, 2]`` image convention, ``triangles [T, 3]`` into
    the N new vertices, ``uv_of [N]`` source UV index).
    """
    if mesh.uv is None:
        raise ValueError("mesh has no UVs")
    tri = np.asarray(mesh.triangles, np.int64)
    uv_tri = np.asarray(mesh.triangles if mesh.uv_triangles is None else mesh.uv_triangles, np.int64)
    key = tri * len(mesh.uv) + uv_tri
    uniq, inv = np.unique(key.reshape(-1), return_inverse=True)
    vertex_of, uv_of = uniq // len(mesh.uv), uniq % len(mesh.uv)
    return vertex_of, np.asarray(mesh.uv)[uv_of], inv.reshape(-1, 3), uv_of


def read_obj(path: str | os.PathLike, max_polygons: int | None = None) -> MeshData:
    """Read an OBJ's vertices, faces and UVs; quads (a,b,c,d) become triangles (a,b,c), (a,c,d).

    ``max_polygons`` keeps only the first N polygons (the ICT-FaceKit face area is a polygon prefix).
    """
    path = Path(path)
    verts: list[list[float]] = []
    uvs: list[list[float]] = []
    tris: list[list[int]] = []
    uv_tris: list[list[int]] = []
    polygons = 0
    with open(path, encoding="utf-8", errors="replace") as f:
        for line_no, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            try:
                if parts[0] == "v":
                    verts.append([float(p) for p in parts[1:4]])
                elif parts[0] == "vt":
                    uvs.append([float(parts[1]), 1.0 - float(parts[2])])
                elif parts[0] == "f":
                    if max_polygons is not None and polygons >= max_polygons:
                        continue
                    polygons += 1
                    corners = [p.split("/") for p in parts[1:]]
                    vi = [int(c[0]) - 1 for c in corners]
                    ti = [int(c[1]) - 1 if len(c) > 1 and c[1] else -1 for c in corners]
                    for k in range(1, len(vi) - 1):
                        tris.append([vi[0], vi[k], vi[k + 1]])
                        uv_tris.append([ti[0], ti[k], ti[k + 1]])
            except (ValueError, IndexError) as exc:
                raise ValueError(f"{path}:{line_no}: malformed OBJ line {line.strip()!r}") from exc
    if not verts:
        raise ValueError(f"{path}: no vertices found; is this an OBJ file?")
    uv_tri = np.asarray(uv_tris, np.int32).reshape(-1, 3)
    has_uv = bool(uvs) and uv_tri.size > 0 and (uv_tri >= 0).all()
    return MeshData(
        vertices=np.asarray(verts, np.float32),
        triangles=np.asarray(tris, np.int32).reshape(-1, 3),
        uv=np.asarray(uvs, np.float32) if has_uv else None,
        uv_triangles=uv_tri if has_uv else None,
    )
