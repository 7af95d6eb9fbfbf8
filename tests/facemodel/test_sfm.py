import numpy as np
import pytest

from fds.facemodel.topology import edge_topology


def test_sfm_sizes_and_units(sfm):
    assert sfm.num_vertices == 3448
    assert sfm.triangles.shape == (6736, 3)
    assert sfm.num_identity == 63
    assert sfm.expr_names == ("anger", "disgust", "fear", "happiness", "sadness", "surprise")
    # mm: outer eye corners of an average adult are 85–100 mm apart
    lm = sfm.landmark_positions()
    assert 85 < np.linalg.norm(lm[37] - lm[46]) < 100


def test_sfm_basis_is_orthonormal(sfm):
    b = sfm.id_basis.reshape(sfm.num_identity, -1).astype(np.float64)
    np.testing.assert_allclose(b @ b.T, np.eye(sfm.num_identity), atol=1e-4)
    assert (np.diff(sfm.id_variance) <= 0).all() and sfm.id_variance[-1] > 0


def test_landmarks_sit_where_they_should(sfm):
    lm = sfm.landmark_positions()
    # the nose tip is the most frontal landmark, and close to the most frontal vertex of the mesh
    assert max(lm, key=lambda k: lm[k][2]) == 31
    assert lm[31][2] > np.percentile(sfm.mean_mm[:, 2], 99)
    # eye corners mirror each other across x = 0 (mm)
    for right, left in ((37, 46), (40, 43)):
        np.testing.assert_allclose(lm[right] * [-1, 1, 1], lm[left], atol=2.0)
    assert lm[37][0] < 0 < lm[46][0]  # subject's right eye at negative x
    assert lm[9][1] < lm[58][1] < lm[31][1] < lm[28][1]  # chin below mouth below nose tip below bridge


def test_uvs_in_unit_square_with_forehead_at_top(sfm):
    assert sfm.uv.min() >= 0 and sfm.uv.max() <= 1
    top, bottom = sfm.mean_mm[:, 1].argmax(), sfm.mean_mm[:, 1].argmin()
    assert sfm.uv[top, 1] < 0.1 and sfm.uv[bottom, 1] > 0.9


def test_vertices_apply_coefficients(sfm):
    happy = sfm.vertices(expr_coeffs=[0, 0, 0, 1, 0, 0])
    lm = sfm.landmarks_ibug68
    width_neutral = np.linalg.norm(sfm.mean_mm[lm[48]] - sfm.mean_mm[lm[54]])
    width_happy = np.linalg.norm(happy[lm[48]] - happy[lm[54]])
    assert width_happy > width_neutral + 3  # a smile widens the mouth by several mm
    a = np.zeros(5, np.float32)
    a[0] = 1.0  # one standard deviation
    moved = sfm.vertices(id_coeffs=a) - sfm.mean_mm
    np.testing.assert_allclose(np.linalg.norm(moved), np.sqrt(sfm.id_variance[0]), rtol=1e-4)


def test_edge_topology_matches_eos_file(sfm, shared_data):
    import json

    data = json.loads((shared_data / "assets/sfm/sfm_3448_edge_topology.json").read_text())["edge_topology"]
    ref = {tuple(sorted((e["value0"] - 1, e["value1"] - 1))) for e in data["adjacent_vertices"]}
    faces, verts = edge_topology(sfm.triangles)
    assert {tuple(v) for v in verts.tolist()} == ref
    ref_faces = {tuple(sorted((e["value0"] - 1, e["value1"] - 1))) for e in data["adjacent_faces"]}
    assert {tuple(sorted(f)) for f in faces.tolist()} == ref_faces


def test_eos_model_round_trip(sfm):

    mm = sfm.eos_model()
    mean = np.asarray(mm.get_shape_model().get_mean()).reshape(-1, 3)
    np.testing.assert_allclose(mean, sfm.mean_mm, atol=1e-4)
    assert len(mm.get_expression_model()) == 6
    sample = np.asarray(mm.draw_sample([1.0, 0.5], [0, 0, 0, 1, 0, 0], []).vertices)
    expected = sfm.vertices(id_coeffs=[1.0, 0.5], expr_coeffs=[0, 0, 0, 1, 0, 0])
    np.testing.assert_allclose(sample, expected, atol=1e-2)


def test_face_model_pickles_without_eos_objects(sfm):
    import pickle

    sfm.eos_model()
    clone = pickle.loads(pickle.dumps(sfm))
    np.testing.assert_array_equal(clone.mean_mm, sfm.mean_mm)
    assert clone.eos_model() is not sfm.eos_model()


def test_fit_with_eos_objects_on_labelled_photo(sfm, labelled_dir):
    """The eos objects FaceModel builds are the ones a fit needs: fit image_0010's human landmarks."""
    import eos
    from PIL import Image

    pts = np.loadtxt(labelled_dir / "image_0010.pts", skiprows=3, max_rows=68) - 1.0
    w, h = Image.open(labelled_dir / "image_0010.png").size
    landmarks = [eos.core.Landmark(str(i + 1), p.astype(np.float32)) for i, p in enumerate(pts)]
    mesh, pose, shape, expr = eos.fitting.fit_shape_and_pose(
        sfm.eos_model(), landmarks, sfm.eos_landmark_mapper(), w, h, sfm.eos_edge_topology(),
        sfm.eos_contour_landmarks(), sfm.eos_model_contour())
    assert len(shape) == 63 and len(expr) == 6
    yaw_deg = pose.get_yaw_pitch_roll()[0]
    assert -45 < yaw_deg < -10  # the subject looks to her left (eos reports yaw ≈ −28.5° here)
    assert len(mesh.vertices) == 3448


@pytest.mark.parametrize("bad", [np.zeros((3, 4)), np.array([[0, 1, 2], [0, 1, 2], [0, 1, 2]])])
def test_edge_topology_rejects_bad_meshes(bad):
    with pytest.raises(ValueError):
        edge_topology(bad)
