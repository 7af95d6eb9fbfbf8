"""The viewer's data: face folders found, display meshes built like the baked mesh, rescaled, decimated."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fds.export.maps import write_displacement
from fds.export.mesh_io import write_obj
from fds.mesh.bake import bake_displacement
from fds.mesh.meshdata import MeshData
from fds.view.faces import find_faces, heat_map, load_face, summary_markdown


@pytest.fixture(scope="module")
def face_folder(tmp_path_factory, sfm):
    """A face folder in the pipeline's layout: the SFM mean face and a ridged displacement map (mm)."""
    out = tmp_path_factory.mktemp("run") / "someone"
    out.mkdir()
    write_obj(out / "proxy.obj", MeshData(sfm.mean_mm, sfm.triangles, sfm.uv, sfm.uv_triangles))
    r = 256
    yy = np.mgrid[0:r, 0:r][0] / r
    disp = (0.3 * np.sin(2 * np.pi * 12 * yy)).astype(np.float32)
    write_displacement(out / "displacement", disp, 0.5, float_format="exr")
    result = {"reprojection_error_px": 3.2, "yaw_pitch_roll_deg": [1.0, -2.0, 0.5], "emotion": {"happy": 0.9},
              "displacement_mm": {"min": -0.3, "max": 0.3, "coverage": 0.8}, "timings_s": {"a": 1.0, "b": 2.5},
              "warnings": ["only 40% visible"]}
    (out / "result.json").write_text(json.dumps(result))
    return out


def test_find_faces(face_folder, tmp_path):
    assert find_faces(face_folder) == [face_folder]  # one face's folder
    assert find_faces(face_folder.parent) == [face_folder]  # a run folder: its faces
    with pytest.raises(FileNotFoundError, match="no face outputs"):
        find_faces(tmp_path)
    with pytest.raises(FileNotFoundError, match="not a folder"):
        find_faces(tmp_path / "missing")


def test_display_mesh_is_the_baked_surface_at_fewer_levels(face_folder, sfm):
    face = load_face(face_folder)
    np.testing.assert_array_equal(face.displacement_mm.shape, (256, 256))  # read from the EXR alone
    mesh = face.display_mesh(max_triangles=120_000)
    assert mesh.levels == 4 - 2 and len(mesh.triangles) == len(sfm.triangles) * 4 ** 2 <= 120_000
    # the files' construction (bake at the same level, seams split, centred, metres) on a smooth base: the
    # proxy's Phong tessellation, which keeps the proxy's vertices and bulges its flat triangles by < 1 mm
    proxy = MeshData(sfm.mean_mm, sfm.triangles, sfm.uv, sfm.uv_triangles)
    baked = bake_displacement(proxy, face.displacement_mm, levels=mesh.levels)
    v = mesh.vertices(1.0) * 1000.0 + face.centre_mm
    offset = np.linalg.norm(v - baked.mesh.vertices[mesh.weld], axis=1)  # mm
    corners = mesh.weld < len(sfm.mean_mm)  # subdivision keeps the proxy's vertices first
    assert offset[corners].max() < 1e-3 and 0.01 < offset.max() < 1.0
    np.testing.assert_allclose(mesh.vertices(1.0) - mesh.base, (baked.mesh.vertices - baked.base_vertices)[mesh.weld]
                               / 1000.0, atol=1e-7)  # the same displacement along the same directions
    # the scale slider: 0 = the proxy surface, 2 = twice the relief
    np.testing.assert_allclose(mesh.vertices(0.0), mesh.base, atol=1e-7)
    np.testing.assert_allclose(mesh.vertices(2.0) - mesh.base, 2 * (mesh.vertices(1.0) - mesh.base), atol=1e-7)
    # shading normals: unit, equal across UV seams; at scale 0 the proxy's smooth normals, with relief tilted
    n = mesh.shading_normals(1.0)
    np.testing.assert_allclose(np.linalg.norm(n, axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(mesh.shading_normals(0.0), mesh.normals, atol=1e-6)
    tilt = np.degrees(np.arccos(np.clip((n * mesh.normals).sum(1), -1, 1)))
    assert np.percentile(tilt, 90) > 1.0  # 0.3 mm ridges every ~1/12 of the map tilt the normals
    seam = np.flatnonzero(np.bincount(mesh.weld) > 1)[:50]
    for w in seam:
        copies = n[mesh.weld == w]
        np.testing.assert_allclose(copies, copies[:1].repeat(len(copies), 0), atol=1e-6)


def test_heat_map_and_numbers(face_folder):
    face = load_face(face_folder)
    rgb, limit = heat_map(face.displacement_mm)
    assert rgb.shape == (256, 256, 3) and rgb.dtype == np.uint8 and 0.25 < limit <= 0.3 + 1e-6
    hi = np.unravel_index(np.argmax(face.displacement_mm), rgb.shape[:2])
    lo = np.unravel_index(np.argmin(face.displacement_mm), rgb.shape[:2])
    assert rgb[hi][0] > rgb[hi][2] and rgb[lo][2] > rgb[lo][0]  # outward red, inward blue
    text = summary_markdown(face, face.display_mesh(30_000))
    for needle in ("3.20 px", "happy (90%)", "-0.300", "80%", "3.5 s", "only 40% visible", "triangles"):
        assert needle in text
