"""Binary glTF 2.0 (``.glb``) of a textured, normal-mapped mesh, written from arrays (no per-vertex Python).

glTF conventions and how fds maps onto them:

* positions in **metres** (fds works in mm: divided by 1000), right-handed, y up (the face model's frame);
* ``TEXCOORD_0`` has its origin at the top-left of the image, v down: fds's image convention, stored as is;
* ``NORMAL``: the shading normal the normal map is relative to (for a baked mesh: the smooth proxy normals it
  was displaced along, so the relief is not counted twice); ``TANGENT`` = (T, w) with the bitangent
  cross(N, T)·w pointing **up the map**, the "green up" convention of glTF normal textures and of fds's
  ``normal_tangent.png``;
* the material is metallic-roughness with the UV texture as base colour and the tangent-space normal map as
  ``normalTexture``; further images (the 16-bit displacement) travel in ``images`` with their meaning in
  ``extras`` (viewers ignore them; DCC importers list them).

Vertices on UV seams are split (one per distinct vertex/UV pair), as every per-vertex-UV format needs.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import numpy as np

from fds.fileio import atomic_write_bytes
from fds.mesh.meshdata import MeshData

_FLOAT, _UINT32 = 5126, 5125
_ARRAY_BUFFER, _ELEMENT_ARRAY_BUFFER = 34962, 34963


def _pad(data: bytes, fill: bytes = b"\0") -> bytes:
    return data + fill * (-len(data) % 4)


def write_glb(
    path: str | os.PathLike,
    mesh: MeshData,
    vertex_of: np.ndarray,
    uv: np.ndarray,
    triangles: np.ndarray,
    normals: np.ndarray | None = None,
    tangents: np.ndarray | None = None,
    base_color_png: bytes | None = None,
    normal_png: bytes | None = None,
    extra_images: dict[str, tuple[bytes, dict]] | None = None,
) -> Path:
    """Write a ``.glb``, atomically.

    ``mesh.vertices [V, 3]`` mm; ``vertex_of [N]``, ``uv [N, 2]`` (image convention) and ``triangles [T, 3]``
    into the N split vertices come from :func:`fds.mesh.meshdata.split_seams`; ``normals [V, 3]`` and
    ``tangents [V, 4]`` per source vertex (unit; w = ±1); ``base_color_png`` / ``normal_png`` are PNG files'
    bytes (the UV texture, ``normal_tangent.png``); ``extra_images`` maps a name to (PNG bytes, extras dict).
    """
    vertex_of = np.asarray(vertex_of, np.int64)
    arrays: list[tuple[bytes, int | None]] = []  # (bytes, bufferView target)
    accessors: list[dict] = []

    def add(array: np.ndarray, kind: str, target: int | None, component: int, minmax: bool = False) -> int:
        arrays.append((np.ascontiguousarray(array).tobytes(), target))
        acc = {"bufferView": len(arrays) - 1, "componentType": component, "count": int(len(array)), "type": kind}
        if minmax:
            acc["min"], acc["max"] = array.min(0).tolist(), array.max(0).tolist()
        accessors.append(acc)
        return len(accessors) - 1

    pos = (np.asarray(mesh.vertices, np.float64)[vertex_of] / 1000.0).astype(np.float32)
    attributes = {"POSITION": add(pos, "VEC3", _ARRAY_BUFFER, _FLOAT, minmax=True)}
    if normals is not None:
        attributes["NORMAL"] = add(np.asarray(normals, np.float32)[vertex_of], "VEC3", _ARRAY_BUFFER, _FLOAT)
    if tangents is not None:
        attributes["TANGENT"] = add(np.asarray(tangents, np.float32)[vertex_of], "VEC4", _ARRAY_BUFFER, _FLOAT)
    attributes["TEXCOORD_0"] = add(np.asarray(uv, np.float32), "VEC2", _ARRAY_BUFFER, _FLOAT)
    indices = add(np.asarray(triangles, np.uint32).reshape(-1), "SCALAR", _ELEMENT_ARRAY_BUFFER, _UINT32)

    images: list[dict] = []
    material: dict = {"name": "face", "pbrMetallicRoughness": {"metallicFactor": 0.0, "roughnessFactor": 0.8}}

    def add_image(png: bytes, name: str, extras: dict | None = None) -> int:
        arrays.append((png, None))
        images.append({"bufferView": len(arrays) - 1, "mimeType": "image/png", "name": name,
                       **({"extras": extras} if extras else {})})
        return len(images) - 1

    textures: list[dict] = []
    if base_color_png is not None:
        textures.append({"sampler": 0, "source": add_image(base_color_png, "texture")})
        material["pbrMetallicRoughness"]["baseColorTexture"] = {"index": len(textures) - 1}
    if normal_png is not None:
        textures.append({"sampler": 0, "source": add_image(normal_png, "normal_tangent")})
        material["normalTexture"] = {"index": len(textures) - 1}
    for name, (png, extras) in (extra_images or {}).items():
        add_image(png, name, extras)

    views, offset, chunks = [], 0, []
    for data, target in arrays:
        views.append({"buffer": 0, "byteOffset": offset, "byteLength": len(data),
                      **({"target": target} if target else {})})
        chunks.append(_pad(data))
        offset += len(chunks[-1])
    doc = {
        "asset": {"version": "2.0", "generator": "fds"},
        "scene": 0, "scenes": [{"nodes": [0]}], "nodes": [{"mesh": 0, "name": "detailed"}],
        "meshes": [{"primitives": [{"attributes": attributes, "indices": indices, "material": 0}]}],
        "materials": [material], "accessors": accessors, "bufferViews": views, "buffers": [{"byteLength": offset}],
    }
    if textures:
        doc |= {"textures": textures, "samplers": [{"magFilter": 9729, "minFilter": 9987}]}
    if images:
        doc["images"] = images
    js = _pad(json.dumps(doc, separators=(",", ":")).encode(), b" ")
    total = 12 + 8 + len(js) + 8 + offset
    head = struct.pack("<4sII", b"glTF", 2, total) + struct.pack("<I4s", len(js), b"JSON")
    atomic_write_bytes(Path(path), [head, js, struct.pack("<I4s", offset, b"BIN\0"), *chunks])
    return Path(path)
