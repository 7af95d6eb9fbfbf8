"""eos fitting modes and expression priors on real labelled photos."""

from __future__ import annotations

import numpy as np
import pytest

from fds.facemodel import load_face_model
from fds.proxy.expression_prior import EMOTION_TO_ARKIT, emotion_prior, expression_prior, geometric_prior
from fds.proxy.fit import FitConfig, fit_proxy
from fds.proxy.landmarks import read_pts


@pytest.fixture(scope="module")
def sfm():
    return load_face_model("sfm")


@pytest.fixture(scope="module")
def lm10(labelled_dir):
    return read_pts(labelled_dir / "image_0010.pts")


def test_fit_reprojects_landmarks_and_mesh_matches_coefficients(sfm, lm10):
    r = fit_proxy(sfm, lm10, (1024, 1280), "none")
    assert r.reprojection_error_px < 10.0  # 1280×1024 photo, face ~330 px wide
    np.testing.assert_allclose(r.vertices_mm, sfm.vertices(r.id_coeffs, r.expr_coeffs), atol=1e-3)
    assert np.allclose(r.rotation @ r.rotation.T, np.eye(3), atol=1e-5)
    yaw = r.yaw_pitch_roll_deg[0]
    assert -40 < yaw < -15  # the subject turns clearly to one side
    assert ((r.expr_coeffs >= 0) & (r.expr_coeffs <= 1)).all()
    # the projection of the mesh's landmark vertices is where the error says
    vid = sfm.landmarks_ibug68
    k = np.flatnonzero(vid >= 0)
    err = np.linalg.norm(r.project(r.vertices_mm[vid[k]]) - lm10[k], axis=1)
    np.testing.assert_allclose(err, r.landmark_error_px[k], atol=1e-3)


def test_modes_init_and_fix(sfm, lm10):
    prior = emotion_prior(sfm, {"happy": 0.8, "neutral": 0.2})
    fixed = fit_proxy(sfm, lm10, (1024, 1280), "fix", prior)
    np.testing.assert_array_equal(fixed.expr_coeffs, prior)
    np.testing.assert_allclose(fixed.vertices_mm, sfm.vertices(fixed.id_coeffs, prior), atol=1e-3)
    free = fit_proxy(sfm, lm10, (1024, 1280), "none")
    init = fit_proxy(sfm, lm10, (1024, 1280), "init", prior)
    # init is pulled towards the prior's happiness; the free fit finds almost none on this face
    i = sfm.expr_names.index("happiness")
    assert init.expr_coeffs[i] > free.expr_coeffs[i] + 0.05
    # freezing the expression cannot fit the landmarks better than fitting it
    assert free.reprojection_error_px <= fixed.reprojection_error_px + 0.5
    with pytest.raises(ValueError, match="prior_expr"):
        fit_proxy(sfm, lm10, (1024, 1280), "fix")
    with pytest.raises(ValueError, match="mode"):
        fit_proxy(sfm, lm10, (1024, 1280), "freeze", prior)


def test_regularisation_is_configurable(sfm, lm10):
    loose = fit_proxy(sfm, lm10, (1024, 1280), "none", config=FitConfig(lambda_identity=1.0))
    tight = fit_proxy(sfm, lm10, (1024, 1280), "none", config=FitConfig(lambda_identity=1000.0))
    assert np.linalg.norm(tight.id_coeffs) < np.linalg.norm(loose.id_coeffs)
    assert loose.reprojection_error_px < tight.reprojection_error_px


def test_emotion_prior_sfm_and_ict(sfm):
    c = emotion_prior(sfm, {"happy": 0.7, "surprise": 0.2, "neutral": 0.1})
    assert c[sfm.expr_names.index("happiness")] == pytest.approx(0.7)
    assert c[sfm.expr_names.index("surprise")] == pytest.approx(0.2)
    ict = load_face_model("ict")
    c = emotion_prior(ict, {"happy": 1.0})
    names = dict(zip(ict.expr_names, c, strict=True))
    assert names["mouthSmile_L"] == names["mouthSmile_R"] == pytest.approx(1.0)
    assert names["jawOpen"] == 0
    c = emotion_prior(ict, {"surprise": 1.0})
    assert dict(zip(ict.expr_names, c, strict=True))["browOuterUp_L"] > 0.5
    # every blendshape the table names exists in the ICT model
    for table in EMOTION_TO_ARKIT.values():
        for base in table:
            assert f"{base}_L" in ict.expr_names or base in ict.expr_names, base
    with pytest.raises(ValueError, match="unknown emotion"):
        emotion_prior(sfm, {"joy": 1.0})


def test_geometric_prior_tells_a_smile_from_a_neutral_face(sfm, labelled_dir):
    # helen_133275413_1: broad smile (FER happy 0.75); helen_1238081332_1: neutral (FER neutral 0.6)
    smile = geometric_prior(sfm, read_pts(labelled_dir / "helen_133275413_1.pts"))
    neutral = geometric_prior(sfm, read_pts(labelled_dir / "helen_1238081332_1.pts"))
    i = sfm.expr_names.index("happiness")
    assert smile[i] > 0.4 and neutral[i] < 0.1
    both = expression_prior(sfm, "both", {"sad": 1.0}, read_pts(labelled_dir / "helen_133275413_1.pts"))
    assert both[i] == pytest.approx(smile[i]) and both[sfm.expr_names.index("sadness")] == 1.0
