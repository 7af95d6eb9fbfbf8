"""Mesh files: Wavefront OBJ (+ MTL) with per-corner UVs, written atomically.

UV convention inside fds is the image one: ``u`` → column / width, ``v`` → row / height, ``v = 0`` at the top
row of a UV map. OBJ stores ``vt`` with ``v = 0`` at the bottom, so ``vt = (u, 1 - v)`` on write and the
inverse on read.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fds.fileio import atomic_write_bytes


@dataclass
class MeshData:
    """A triangle mesh. ``vertices [V,3]`` (units are the caller's, fds uses mm), ``triangles [T,3]`` int,
    optional per-corner UVs ``uv [U,2]`` (image convention) indexed by ``uv_triangles [T,3]``."""

    vertices: np.ndarray
    triangles: np.ndarray
    uv: np.ndarray | None = None
    uv_triangles: np.ndarray | None = None


#: rows formatted per block by the OBJ writer (bounds its temporaries to a few tens of MB)
OBJ_BLOCK_ROWS = 1 << 17


def _num_digits(v: np.ndarray) -> np.ndarray:
    """Decimal digits of non-negative int64 ``v`` (at least 1)."""
    n = np.ones(v.shape, np.int64)
    p = 10
    while True:
        more = v >= p
        if not more.any():
            return n
        n += more
        p *= 10


def _digit_chars(v: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Non-negative int64 ``v [N]`` → (ASCII digits ``uint8 [N, width]`` right-aligned, keep ``bool [N, width]``
    that drops the leading zeros, keeping at least one digit)."""
    powers = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    chars = (v[:, None] // powers % 10 + 48).astype(np.uint8)
    keep = np.arange(width)[None, :] >= width - _num_digits(v)[:, None]
    return chars, keep


def _column(values: np.ndarray, decimals: int | None) -> tuple[np.ndarray, np.ndarray]:
    """One column as text: integers (``decimals=None``) or fixed-point ``%.{decimals}f``."""
    if decimals is None:
        v = np.asarray(values, np.int64)
        return _digit_chars(v, int(_num_digits(np.array([v.max(initial=0)]))[0]))
    x = np.asarray(values, np.float64)
    q = np.rint(x * 10.0**decimals).astype(np.int64)
    neg = np.signbit(x)  # as printf: "-0.000000" for small negative numbers and −0
    mag = np.abs(q)
    whole, frac = mag // 10**decimals, mag % 10**decimals
    w_chars, w_keep = _digit_chars(whole, int(_num_digits(np.array([whole.max(initial=0)]))[0]))
    f_chars = _digit_chars(frac, decimals)[0]
    n = len(q)
    sign = np.full((n, 1), ord("-"), np.uint8)
    dot = np.full((n, 1), ord("."), np.uint8)
    chars = np.concatenate([sign, w_chars, dot, f_chars], 1)
    keep = np.concatenate([neg[:, None], w_keep, np.ones((n, 1 + decimals), bool)], 1)
    return chars, keep


def format_rows(prefix: str, columns: list[np.ndarray], separators: list[str], decimals: int | None) -> bytes:
    """``prefix`` + column 0 + separators[0] + column 1 + … per row, every row ending in a newline: the text of
    ``N`` OBJ lines built with array operations (no Python loop over rows). Columns are ``[N]`` arrays,
    integers when ``decimals`` is None, else written as ``%.{decimals}f`` (round half to even)."""
    n = len(columns[0])
    parts = [np.frombuffer(prefix.encode("ascii"), np.uint8)[None].repeat(n, 0)]
    keeps = [np.ones_like(parts[0], bool)]
    for col, sep in zip(columns, [*separators, "\n"], strict=True):
        chars, keep = _column(col, decimals)
        parts += [chars, np.frombuffer(sep.encode("ascii"), np.uint8)[None].repeat(n, 0)]
        keeps += [keep, np.ones_like(parts[-1], bool)]
    return np.concatenate(parts, 1)[np.concatenate(keeps, 1)].tobytes()


def _obj_chunks(mesh: MeshData, header: list[str]):
    yield ("\n".join(header) + "\n").encode() if header else b""
    v = np.asarray(mesh.vertices, np.float64)
    for s in range(0, len(v), OBJ_BLOCK_ROWS):
        yield format_rows("v ", list(v[s : s + OBJ_BLOCK_ROWS].T), [" ", " "], 6)
    tri = np.asarray(mesh.triangles, np.int64) + 1
    if mesh.uv is not None:
        uv = np.asarray(mesh.uv, np.float64)
        for s in range(0, len(uv), OBJ_BLOCK_ROWS):
            block = uv[s : s + OBJ_BLOCK_ROWS]
            yield format_rows("vt ", [block[:, 0], 1.0 - block[:, 1]], [" "], 6)
        uvt = np.asarray(mesh.uv_triangles if mesh.uv_triangles is not None else mesh.triangles, np.int64) + 1
        corners = np.stack([tri, uvt], 2).reshape(len(tri), 6)  # a ta b tb c tc
        for s in range(0, len(tri), OBJ_BLOCK_ROWS):
            yield format_rows("f ", list(corners[s : s + OBJ_BLOCK_ROWS].T), ["/", " ", "/", " ", "/"], None)
    else:
        for s in range(0, len(tri), OBJ_BLOCK_ROWS):
            yield format_rows("f ", list(tri[s : s + OBJ_BLOCK_ROWS].T), [" ", " "], None)


def write_obj(path: str | os.PathLike, mesh: MeshData, texture: str | None = None) -> Path:
    """Write ``mesh`` as OBJ (``%.6f`` coordinates); with ``texture`` (a file name beside the OBJ) also an MTL that
    maps it. The text is built block by block with array operations and streamed into the file (atomically);
    :func:`write_obj_reference` is the plain line-by-line version it is tested against."""
    path = Path(path)
    header: list[str] = []
    if texture is not None:
        header = _write_mtl(path, texture)
    atomic_write_bytes(path, _obj_chunks(mesh, header))
    return path


def _write_mtl(path: Path, texture: str) -> list[str]:
    mtl = path.with_suffix(".mtl")
    mtl_text = f"newmtl face\nKa 1 1 1\nKd 1 1 1\nKs 0 0 0\nillum 1\nmap_Kd {texture}\n"
    atomic_write_bytes(mtl, [mtl_text.encode()])
    return [f"mtllib {mtl.name}", "usemtl face"]


def write_obj_reference(path: str | os.PathLike, mesh: MeshData, texture: str | None = None) -> Path:
    """The plain OBJ writer (one formatted Python string per line): the reference of :func:`write_obj`."""
    path = Path(path)
    lines: list[str] = []
    if texture is not None:
        lines += _write_mtl(path, texture)
    lines += [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in np.asarray(mesh.vertices, np.float64)]
    tri = np.asarray(mesh.triangles, np.int64) + 1
    if mesh.uv is not None:
        uvt = np.asarray(mesh.uv_triangles if mesh.uv_triangles is not None else mesh.triangles, np.int64) + 1
        lines += [f"vt {u:.6f} {1.0 - v:.6f}" for u, v in np.asarray(mesh.uv, np.float64)]
        lines += [f"f {a}/{ta} {b}/{tb} {c}/{tc}" for (a, b, c), (ta, tb, tc) in zip(tri, uvt, strict=True)]
    else:
        lines += [f"f {a} {b} {c}" for a, b, c in tri]
    atomic_write_bytes(path, [("\n".join(lines) + "\n").encode()])
    return path


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
