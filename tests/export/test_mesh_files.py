"""Mesh files of a baked mesh: OBJ, PLY and GLB load in trimesh with UVs, PLY splits UV seams, the GLB carries the
normal map and tangents in the map's convention."""

from __future__ import annotations

import numpy as np
import pytest

from fds.export.mesh_io import write_baked, write_ply
from fds.mesh.bake import bake_displacement
from fds.mesh.meshdata import read_obj


def test_written_meshes_load_in_trimesh_with_uvs(proxy, tmp_path):
    trimesh = pytest.importorskip("trimesh")
    rng = np.random.default_rng(0)
    baked = bake_displacement(proxy, rng.uniform(-1, 1, (64, 64)).astype(np.float32), levels=1)
    paths = write_baked(tmp_path / "detailed", baked, texture="texture.png", formats=("obj", "ply", "glb"))
    n_v, n_t = len(baked.mesh.vertices), len(baked.mesh.triangles)
    ply = trimesh.load(paths["ply"], process=False)
    assert len(ply.faces) == n_t and len(ply.vertices) == n_v  # SFM has no seams: no split vertices
    np.testing.assert_allclose(ply.vertices, baked.mesh.vertices, atol=1e-5)
    uv = np.zeros((n_v, 2))
    uv[baked.mesh.triangles.reshape(-1)] = baked.mesh.uv[baked.mesh.uv_triangles.reshape(-1)]
    np.testing.assert_allclose(ply.visual.uv, np.stack([uv[:, 0], 1 - uv[:, 1]], 1), atol=1e-6)
    obj = trimesh.load(paths["obj"], process=False, maintain_order=True)
    assert len(obj.faces) == n_t and obj.visual.uv is not None and len(obj.visual.uv) == len(obj.vertices)
    back = read_obj(paths["obj"])
    np.testing.assert_allclose(back.vertices, baked.mesh.vertices, atol=1e-5)
    glb = trimesh.load(paths["glb"], force="mesh", process=False)
    assert len(glb.faces) == n_t and glb.visual.uv is not None
    np.testing.assert_allclose(np.abs(glb.vertices).max(), np.abs(baked.mesh.vertices).max() / 1000, rtol=1e-5)


def test_ply_splits_seams(ict_proxy, tmp_path):
    trimesh = pytest.importorskip("trimesh")
    path = write_ply(tmp_path / "ict.ply", ict_proxy)
    m = trimesh.load(path, process=False)
    assert len(m.vertices) >= len(ict_proxy.uv) - 1 and len(m.faces) == len(ict_proxy.triangles)
    assert m.visual.uv.shape == (len(m.vertices), 2)


def test_glb_carries_the_normal_map_and_tangents_up_the_map(proxy, tmp_path):
    """The glTF file: positions in metres, image-convention UVs, the normal map as the material's
    normalTexture, the displacement as an extra image, and tangents whose bitangent cross(N, T)·w points up
    the map (decreasing v), the convention the tangent-space normal map is written in."""
    import json
    import struct

    d = np.zeros((256, 256), np.float32)
    baked = bake_displacement(proxy, d, levels=1)
    tex = np.full((64, 64, 3), 200, np.uint8)
    normal_png, disp_png = b"\x89PNG normal", b"\x89PNG disp"
    path = write_baked(tmp_path / "detailed", baked, formats=("glb",), texture_image=tex, normal_png=normal_png,
                       extra_images={"displacement": (disp_png, {"scale_mm": 0.5})})["glb"]
    raw = path.read_bytes()
    magic, version, total = struct.unpack("<4sII", raw[:12])
    assert (magic, version, total) == (b"glTF", 2, len(raw))
    n_json = struct.unpack("<I", raw[12:16])[0]
    doc = json.loads(raw[20 : 20 + n_json])
    binary = raw[20 + n_json + 8 :]
    prim = doc["meshes"][0]["primitives"][0]

    def array(name: str, width: int) -> np.ndarray:
        view = doc["bufferViews"][doc["accessors"][prim["attributes"][name]]["bufferView"]]
        return np.frombuffer(binary, np.float32, view["byteLength"] // 4, view["byteOffset"]).reshape(-1, width)

    images = {im["name"]: im for im in doc["images"]}
    view = doc["bufferViews"][images["normal_tangent"]["bufferView"]]
    assert binary[view["byteOffset"] : view["byteOffset"] + view["byteLength"]] == normal_png
    assert images["displacement"]["extras"] == {"scale_mm": 0.5}
    assert doc["textures"][doc["materials"][0]["normalTexture"]["index"]]["source"] == 1
    pos, uv, nrm, tan = array("POSITION", 3), array("TEXCOORD_0", 2), array("NORMAL", 3), array("TANGENT", 4)
    np.testing.assert_allclose(np.abs(pos).max(), np.abs(baked.mesh.vertices).max() / 1000, rtol=1e-6)
    assert uv.min() >= 0 and uv.max() <= 1
    np.testing.assert_allclose(np.linalg.norm(tan[:, :3], axis=1), 1, atol=1e-5)
    assert set(np.unique(tan[:, 3])) <= {-1.0, 1.0}
    bitangent = np.cross(nrm, tan[:, :3]) * tan[:, 3:]
    # up the map on the face: the forehead (small v) lies above (+y) the chin (large v)
    idx = np.frombuffer(binary, np.uint32, doc["accessors"][prim["indices"]]["count"],
                        doc["bufferViews"][doc["accessors"][prim["indices"]]["bufferView"]]["byteOffset"])
    tri = idx.reshape(-1, 3)
    p, t = pos[tri], uv[tri]
    dv = np.stack([t[:, 1, 1] - t[:, 0, 1], t[:, 2, 1] - t[:, 0, 1]], 1)  # v steps of two edges
    up = -(p[:, 1] - p[:, 0]) * np.sign(dv[:, :1])  # 3D direction of decreasing v (rough, per triangle)
    agree = (bitangent[tri[:, 0]] * up).sum(1) > 0
    assert agree[np.abs(dv[:, 0]) > 1e-4].mean() > 0.8
