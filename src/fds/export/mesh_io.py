"""Mesh files, written atomically: Wavefront OBJ (+ MTL) with per-corner UVs, binary PLY, binary glTF, and the
set of them for a baked mesh (:mod:`fds.mesh.bake`).

Positions are mm in the face model's frame (x right, y up, z to the viewer). UV convention inside fds is the
image one: ``u`` → column / width, ``v`` → row / height, ``v = 0`` at the top row of a UV map. OBJ stores ``vt``
with ``v = 0`` at the bottom, so ``vt = (u, 1 - v)`` on write (:func:`fds.mesh.meshdata.read_obj` inverts it);
PLY and glTF store ``s, t = u, 1 - v``.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import torch

from fds.fileio import atomic_write_bytes
from fds.mesh.bake import BakedMesh
from fds.mesh.meshdata import MeshData, split_seams
from fds.render import tangent_frames

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


def write_ply(path: str | os.PathLike, mesh: MeshData, normals: np.ndarray | None = None) -> Path:
    """Binary little-endian PLY: ``x y z`` (mm) [``nx ny nz``] [``s t``], faces ``vertex_indices``; atomic.

    With UVs, vertices on UV seams are duplicated (one per UV) and ``s, t = u, 1 − v`` (OpenGL convention, as
    trimesh and Blender read them).
    """
    path = Path(path)
    v = np.asarray(mesh.vertices, np.float32)
    tri = np.asarray(mesh.triangles, np.int64)
    if mesh.uv is not None:
        vertex_of, uv, tri, _ = split_seams(mesh)
    else:
        vertex_of, uv = np.arange(len(v)), None
    fields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")]
    if normals is not None:
        normals = np.asarray(normals, np.float32)
        if normals.shape != v.shape:
            raise ValueError(f"normals must be [V, 3] like the vertices {v.shape}, got {normals.shape}")
        fields += [("nx", "<f4"), ("ny", "<f4"), ("nz", "<f4")]
    if uv is not None:
        fields += [("s", "<f4"), ("t", "<f4")]
    verts = np.empty(len(vertex_of), dtype=fields)
    for k, name in enumerate("xyz"):
        verts[name] = v[vertex_of, k]
    if normals is not None:
        for k, name in enumerate(("nx", "ny", "nz")):
            verts[name] = normals[vertex_of, k]
    if uv is not None:
        verts["s"], verts["t"] = uv[:, 0], 1.0 - uv[:, 1]
    faces = np.empty(len(tri), dtype=[("n", "u1"), ("i", "<i4", (3,))])
    faces["n"], faces["i"] = 3, tri
    header = ["ply", "format binary_little_endian 1.0",
              "comment fds mesh: mm, model frame x right y up z to viewer; s t = u, 1 - v",
              f"element vertex {len(verts)}"]
    header += [f"property float {name}" for name, _ in fields]
    header += [f"element face {len(faces)}", "property list uchar int vertex_indices", "end_header"]
    atomic_write_bytes(path, [("\n".join(header) + "\n").encode("ascii"), verts.tobytes(), faces.tobytes()])
    return path


def baked_tangents(baked: BakedMesh) -> np.ndarray:
    """``[V, 4]`` glTF tangents of a baked mesh: T of the subdivided proxy's tangent frames (+u), w = ±1 so that
    cross(N, T)·w is their bitangent (up the map), N the displacement directions (``baked.normals``)."""
    m = baked.mesh
    t, b, _ = tangent_frames(torch.from_numpy(baked.base_vertices), torch.from_numpy(np.asarray(m.uv, np.float32)),
                             torch.from_numpy(np.asarray(m.triangles, np.int64)),
                             torch.from_numpy(np.asarray(m.uv_triangles, np.int64)))
    n = torch.from_numpy(baked.normals)
    t = torch.nn.functional.normalize(t - (t * n).sum(-1, keepdim=True) * n, dim=-1)  # ⟂ the shading normal
    w = torch.where((torch.linalg.cross(n, t, dim=-1) * b).sum(-1, keepdim=True) < 0, -1.0, 1.0)
    return torch.cat([t, w], -1).numpy().astype(np.float32)


def write_glb(
    path: str | os.PathLike,
    baked: BakedMesh,
    texture_image: np.ndarray | bytes | None = None,
    normal_png: bytes | None = None,
    extra_images: dict[str, tuple[bytes, dict]] | None = None,
) -> Path:
    """``baked`` as binary glTF (:mod:`fds.export.gltf`): displaced positions, the smooth proxy normals and
    tangents the normal map ``normal_png`` (bytes of ``normal_tangent.png``) is relative to, UVs, the UV texture
    (``uint8 [H, W, 3]`` or a PNG file's bytes) as base colour."""
    from fds.export.gltf import write_glb as _write

    vertex_of, uv, tri, _ = split_seams(baked.mesh)
    base = texture_image if isinstance(texture_image, bytes) else None
    if texture_image is not None and base is None:
        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(np.asarray(texture_image, np.uint8)).save(buf, format="PNG")
        base = buf.getvalue()
    return _write(path, baked.mesh, vertex_of, uv, tri, normals=baked.normals, tangents=baked_tangents(baked),
                  base_color_png=base, normal_png=normal_png, extra_images=extra_images)


def write_baked(
    stem: str | os.PathLike,
    baked: BakedMesh,
    texture: str | None = None,
    formats: tuple[str, ...] = ("obj", "ply"),
    texture_image: np.ndarray | bytes | None = None,
    normal_png: bytes | None = None,
    extra_images: dict[str, tuple[bytes, dict]] | None = None,
) -> dict[str, Path]:
    """Write ``baked`` as ``STEM.obj`` (+ MTL naming ``texture``), ``STEM.ply`` and/or ``STEM.glb`` (with
    ``texture_image``, ``normal_png`` and ``extra_images``, see :func:`write_glb`)."""
    stem = Path(stem)
    unknown = set(formats) - {"obj", "ply", "glb"}
    if unknown:
        raise ValueError(f"formats must be among obj, ply, glb; got {sorted(unknown)}")
    out: dict[str, Path] = {}
    if "obj" in formats:
        out["obj"] = write_obj(stem.with_name(stem.name + ".obj"), baked.mesh, texture=texture)
    if "ply" in formats:
        out["ply"] = write_ply(stem.with_name(stem.name + ".ply"), baked.mesh)
    if "glb" in formats:
        out["glb"] = write_glb(stem.with_name(stem.name + ".glb"), baked, texture_image, normal_png, extra_images)
    return out
