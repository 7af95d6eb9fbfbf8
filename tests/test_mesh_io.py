import numpy as np
import pytest
import trimesh

from fds.export.mesh_io import write_obj
from fds.mesh.meshdata import MeshData, read_obj


@pytest.mark.parametrize("model", ["sfm", "ict"])
def test_mesh_round_trips_through_obj(model, request, tmp_path):
    fm = request.getfixturevalue(model)
    path = write_obj(tmp_path / "mean.obj", MeshData(fm.mean_mm, fm.triangles, fm.uv, fm.uv_triangles),
                     texture="tex.png")
    back = read_obj(path)
    np.testing.assert_allclose(back.vertices, fm.mean_mm, atol=1e-5)
    np.testing.assert_array_equal(back.triangles, fm.triangles)
    np.testing.assert_allclose(back.uv[back.uv_triangles], fm.uv[fm.uv_triangles], atol=1e-6)
    assert (tmp_path / "mean.mtl").read_text().strip().endswith("map_Kd tex.png")
    # an independent reader agrees (trimesh splits vertices at UV seams, so compare the surface area)
    tm = trimesh.load(path, process=False, force="mesh")
    ours = trimesh.Trimesh(fm.mean_mm, fm.triangles, process=False)
    assert tm.area == pytest.approx(ours.area, rel=1e-5)


def test_malformed_obj_is_named(tmp_path):
    bad = tmp_path / "bad.obj"
    bad.write_text("v 1 2 3\nv 1 x 3\n")
    with pytest.raises(ValueError, match="bad.obj:2"):
        read_obj(bad)
    empty = tmp_path / "empty.obj"
    empty.write_text("# nothing\n")
    with pytest.raises(ValueError, match="no vertices"):
        read_obj(empty)


def test_array_obj_writer_matches_the_line_by_line_reference(sfm, tmp_path):
    """The vectorised writer produces the reference's bytes: negative and positive coordinates, several integer
    widths, UVs and faces, and a mesh without UVs (blocks smaller than the mesh, so block joins are covered)."""
    import fds.export.mesh_io as mesh_io
    from fds.export.mesh_io import write_obj_reference

    rng = np.random.default_rng(0)
    verts = sfm.mean_mm + rng.normal(0, 30, sfm.mean_mm.shape).astype(np.float32)  # |x| < 1 mm to > 100 mm
    verts[0] = (-0.0000004, 1234.5678914, -0.5)  # rounds to 0.000000, 4-digit whole part, negative fraction
    block = mesh_io.OBJ_BLOCK_ROWS
    mesh_io.OBJ_BLOCK_ROWS = 1000
    try:
        for name, mesh in (("uv", MeshData(verts, sfm.triangles, sfm.uv, sfm.uv_triangles)),
                           ("plain", MeshData(verts, sfm.triangles))):
            fast = write_obj(tmp_path / name / "a.obj", mesh, texture="t.png" if name == "uv" else None)
            ref = write_obj_reference(tmp_path / name / "b.obj", mesh, texture="t.png" if name == "uv" else None)
            a, b = fast.read_bytes(), ref.read_bytes().replace(b"mtllib b.mtl", b"mtllib a.mtl")
            assert a == b
    finally:
        mesh_io.OBJ_BLOCK_ROWS = block
