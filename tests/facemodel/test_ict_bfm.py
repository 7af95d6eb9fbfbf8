import json
import shutil

import numpy as np
import pytest

from fds.assets import AssetError
from fds.export.mesh_io import write_obj
from fds.facemodel import load_face_model
from fds.facemodel.bfm import load_bfm2017
from fds.facemodel.ict import FACE_AREA_VERTICES, convert_facexmodel, load_ict
from fds.mesh.meshdata import MeshData, read_obj


def test_ict_loads_in_mm_with_seamed_uvs(ict):
    assert ict.num_vertices == 9409 and ict.triangles.shape == (18460, 3)
    assert ict.num_identity == 100 and ict.num_expression == 53 and "jawOpen" in ict.expr_names
    lm = ict.landmark_positions()
    assert 80 < np.linalg.norm(lm[37] - lm[46]) < 100  # cm → mm
    assert len(ict.uv) > ict.num_vertices and ict.uv.min() >= 0 and ict.uv.max() <= 1
    # the forehead is at the top of the UV map (image convention), the chin at the bottom
    uv_y = np.zeros(ict.num_vertices)
    uv_y[ict.triangles.reshape(-1)] = ict.uv[ict.uv_triangles.reshape(-1), 1]
    assert uv_y[ict.landmarks_ibug68[19]] < uv_y[ict.landmarks_ibug68[30]] < uv_y[ict.landmarks_ibug68[8]]


def test_ict_identity_basis_keeps_the_shape_distribution(ict, shared_data):
    raw = np.load(shared_data / "assets/ict/ict_facekit_face_area.npz")["identity_shapes"].reshape(100, -1) * 10
    b = ict.id_basis.reshape(100, -1) * np.sqrt(ict.id_variance)[:, None]
    # same covariance: B Bᵀ (compared through its action on a few random directions)
    rng = np.random.default_rng(0)
    probe = rng.normal(size=(raw.shape[1], 4))
    np.testing.assert_allclose(b.T @ (b @ probe), raw.T @ (raw @ probe), rtol=1e-3, atol=1e-2)


def test_ict_eos_fit_runs(ict):
    """ICT through eos: the model, its generated mapping, contours and edge topology."""
    import eos

    verts = ict.vertices(expr_coeffs=np.eye(53)[ict.expr_names.index("jawOpen")] * 0.5)
    # project the model's own landmarks with a known scaled-orthographic camera: 3 px per mm, y down
    lm_xy = verts[ict.landmarks_ibug68][:, :2] * [3, -3] + [400, 400]
    landmarks = [eos.core.Landmark(str(i + 1), p.astype(np.float32)) for i, p in enumerate(lm_xy)]
    mesh, pose, shape, expr = eos.fitting.fit_shape_and_pose(
        ict.eos_model(), landmarks, ict.eos_landmark_mapper(), 800, 800, ict.eos_edge_topology(),
        ict.eos_contour_landmarks(), ict.eos_model_contour(), num_iterations=5)
    assert len(expr) == 53 and len(mesh.vertices) == 9409
    assert expr[ict.expr_names.index("jawOpen")] > 0.1  # the open jaw is (partly) explained by jawOpen
    assert pose.get_projection()[0][0] * 400 == pytest.approx(3.0, rel=0.05)  # recovers 3 px/mm
    camera = np.asarray(eos.fitting.get_3x4_affine_camera_matrix(pose, 800, 800))
    fitted = np.asarray(mesh.vertices)[ict.landmarks_ibug68[17:]]  # the fixed (non-contour) landmarks
    projected = np.c_[fitted, np.ones(len(fitted))] @ camera.T
    assert np.linalg.norm(projected[:, :2] - lm_xy[17:], axis=1).mean() < 15.0  # px, at 3 px/mm


def test_ict_converter_reproduces_the_arrays(tmp_path, shared_data, ict):
    """Convert a FaceXModel folder built from the original neutral OBJ plus two morph OBJs."""
    src = shared_data / "assets/ict/generic_neutral_mesh.obj"
    folder = tmp_path / "FaceXModel"
    folder.mkdir()
    shutil.copy(src, folder / "generic_neutral_mesh.obj")
    full = read_obj(src)
    offset = np.zeros_like(full.vertices)
    offset[:FACE_AREA_VERTICES, 2] = 0.5  # 0.5 cm forward
    write_obj(folder / "identity000.obj", MeshData(full.vertices + offset, full.triangles))
    write_obj(folder / "jawOpen.obj", MeshData(full.vertices - offset, full.triangles))
    meta = {"idx_to_landmark_verts": ict.landmarks_ibug68.tolist(), "expressions": ["jawOpen"]}
    (folder / "vertex_indices.json").write_text(json.dumps(meta))
    out = convert_facexmodel(folder, tmp_path / "ict.npz")
    ref = np.load(shared_data / "assets/ict/ict_facekit_face_area.npz")
    got = np.load(out)
    np.testing.assert_allclose(got["vertices"], ref["vertices"], atol=1e-5)
    np.testing.assert_array_equal(got["faces"], ref["faces"])
    np.testing.assert_allclose(got["uvs"][got["faces_uv"]], ref["uvs"][ref["faces_uv"]], atol=1e-6)
    np.testing.assert_allclose(got["identity_shapes"][0, :, 2], 0.5, atol=1e-5)
    fm = load_ict(npz_path=out)
    assert fm.expr_names == ("jawOpen",) and fm.num_identity == 1
    np.testing.assert_allclose(fm.expr_basis[0, :, 2], -5.0, atol=1e-4)  # mm


def test_ict_converter_names_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="generic_neutral_mesh.obj"):
        convert_facexmodel(tmp_path, tmp_path / "out.npz")


def test_bfm2017_converter_reads_the_statismo_layout(tiny_bfm_h5):
    path, mean = tiny_bfm_h5
    fm = load_bfm2017(path)
    assert fm.num_vertices == 53149 and fm.num_identity == 3 and fm.expr_kind == "pca"
    np.testing.assert_allclose(fm.mean_mm, mean, atol=1e-3)
    np.testing.assert_allclose(fm.id_variance, [400, 100, 25])
    assert fm.uv.min() >= 0 and fm.uv.max() <= 1  # cylindrical fallback UVs
    moved = fm.vertices(id_coeffs=[1.0]) - fm.mean_mm  # one standard deviation = 20 mm of motion
    np.testing.assert_allclose(np.linalg.norm(moved), 20.0, rtol=1e-3)
    mm = fm.eos_model()  # lazily converts to eos
    np.testing.assert_allclose(np.asarray(mm.get_shape_model().get_mean()).reshape(-1, 3), fm.mean_mm, atol=1e-3)
    assert mm.get_expression_model().get_num_principal_components() == 2
    via_config = load_face_model("bfm2017", h5_path=path)
    np.testing.assert_array_equal(via_config.triangles, fm.triangles)


def test_bfm2017_bad_file_is_named(tmp_path):
    bad = tmp_path / "model2017-1_bfm_nomouth.h5"
    bad.write_bytes(b"garbage")
    with pytest.raises(AssetError, match="model2017-1_bfm_nomouth.h5"):
        load_bfm2017(bad)


def test_unknown_model_name():
    with pytest.raises(ValueError, match="sfm, ict, bfm2017"):
        load_face_model("flame")
