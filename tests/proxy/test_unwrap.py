"""UV unwrap: texel colours equal the photo at the texel's projected position; occlusion is masked."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import map_coordinates

from fds.facemodel import load_face_model
from fds.proxy.fit import fit_proxy
from fds.proxy.landmarks import load_image, read_pts
from fds.proxy.unwrap import UnwrapConfig, unwrap_texture


@pytest.fixture(scope="module")
def sfm():
    return load_face_model("sfm")


def _reference_texels(fm, fit, rows, cols, res):
    """Independent per-texel geometry: find the UV triangle holding the texel centre by brute force,
    interpolate projected vertex positions and camera depth with plain barycentrics."""
    uv = fm.uv[fm.uv_triangles]  # [T, 3, 2]
    vid = fm.triangles
    px = fit.project(fit.vertices_mm)[vid]  # [T, 3, 2]
    depth = -fit.camera_points(fit.vertices_mm)[:, 2][vid]  # [T, 3]
    out_px, out_d = [], []
    for r, c in zip(rows, cols, strict=True):
        p = np.array([(c + 0.5) / res, (r + 0.5) / res])
        a, b, cc = uv[:, 0], uv[:, 1], uv[:, 2]
        v0, v1, v2 = b - a, cc - a, p - a
        den = v0[:, 0] * v1[:, 1] - v1[:, 0] * v0[:, 1]
        with np.errstate(divide="ignore", invalid="ignore"):
            l1 = (v2[:, 0] * v1[:, 1] - v1[:, 0] * v2[:, 1]) / den
            l2 = (v0[:, 0] * v2[:, 1] - v2[:, 0] * v0[:, 1]) / den
        inside = np.flatnonzero((l1 >= -1e-6) & (l2 >= -1e-6) & (l1 + l2 <= 1 + 1e-6))
        t = inside[0]
        w = np.array([1 - l1[t] - l2[t], l1[t], l2[t]])
        out_px.append(w @ px[t])
        out_d.append(w @ depth[t])
    return np.array(out_px), np.array(out_d)


def _zbuffer_depth_at(fm, fit, points_px):
    """Nearest surface depth (mm) at photo points, by brute force over every projected triangle."""
    px = fit.project(fit.vertices_mm)[fm.triangles]
    depth = -fit.camera_points(fit.vertices_mm)[:, 2][fm.triangles]
    out = []
    for p in points_px:
        a, b, c = px[:, 0], px[:, 1], px[:, 2]
        v0, v1, v2 = b - a, c - a, p - a
        den = v0[:, 0] * v1[:, 1] - v1[:, 0] * v0[:, 1]
        with np.errstate(divide="ignore", invalid="ignore"):
            l1 = (v2[:, 0] * v1[:, 1] - v1[:, 0] * v2[:, 1]) / den
            l2 = (v0[:, 0] * v2[:, 1] - v2[:, 0] * v0[:, 1]) / den
        ok = (l1 >= 0) & (l2 >= 0) & (l1 + l2 <= 1)
        d = (1 - l1 - l2) * depth[:, 0] + l1 * depth[:, 1] + l2 * depth[:, 2]
        out.append(d[ok].min() if ok.any() else np.inf)
    return np.array(out)


@pytest.mark.parametrize("which", ["image_0010", "grace_hopper"])
def test_visible_texels_are_the_photo_at_their_projection(which, sfm, labelled_dir, grace_hopper_path, detector):
    if which == "image_0010":
        image = load_image(labelled_dir / "image_0010.png")
        lm = read_pts(labelled_dir / "image_0010.pts")
    else:
        image = load_image(grace_hopper_path)
        lm = detector(image)[0].landmarks_px
    fit = fit_proxy(sfm, lm, image.shape[:2])
    res = 512
    uv = unwrap_texture(image, sfm, fit, UnwrapConfig(resolution=res, backend="torch"))
    assert uv.texture.shape == (res, res, 3) and uv.confidence.shape == (res, res)
    assert uv.visibility.mean() > 0.3
    assert (uv.confidence[~uv.visibility] == 0).all() and uv.confidence.max() == pytest.approx(1.0)

    rng = np.random.default_rng(0)
    vis_r, vis_c = np.nonzero(uv.visibility)
    pick = rng.choice(len(vis_r), 150, replace=False)
    rows, cols = vis_r[pick], vis_c[pick]
    ref_px, ref_depth = _reference_texels(sfm, fit, rows, cols, res)
    np.testing.assert_allclose(uv.texel_px[rows, cols], ref_px, atol=0.05)
    # photo sampled (bilinear, pixel centres) at the independently computed projection
    ref_colour = np.stack(
        [
            map_coordinates(image[..., ch].astype(np.float64), [ref_px[:, 1], ref_px[:, 0]], order=1, mode="nearest")
            for ch in range(3)
        ],
        axis=1,
    )
    mae = np.abs(uv.texture[rows, cols].astype(np.float64) - ref_colour).mean()
    assert mae < 1.0, mae
    # visible texels are the nearest surface at their pixel (brute-force z-buffer), within the tolerance
    front = _zbuffer_depth_at(sfm, fit, ref_px)
    assert np.mean(ref_depth <= front + 2.0 + 1e-3) > 0.97


def test_self_occlusion_and_grazing_are_masked(sfm, labelled_dir):
    image = load_image(labelled_dir / "image_0010.png")  # yaw ≈ −29°: one cheek hides behind the nose
    fit = fit_proxy(sfm, read_pts(labelled_dir / "image_0010.pts"), image.shape[:2])
    uv = unwrap_texture(image, sfm, fit, UnwrapConfig(resolution=256, backend="torch"))
    rng = np.random.default_rng(1)
    cov_r, cov_c = np.nonzero(uv.coverage & (uv.texel_px[..., 0] > 0))
    pick = rng.choice(len(cov_r), 300, replace=False)
    rows, cols = cov_r[pick], cov_c[pick]
    ref_px, ref_depth = _reference_texels(sfm, fit, rows, cols, 256)
    occluded = ref_depth > _zbuffer_depth_at(sfm, fit, ref_px) + 4.0  # clearly behind another surface
    assert occluded.sum() >= 5  # this pose has self-occlusion …
    assert not uv.visibility[rows[occluded], cols[occluded]].any()  # … and every such texel is masked
    # the side turned away is seen at grazing angles: lower mean confidence than the side facing the camera
    half = uv.coverage.shape[1] // 2
    left, right = uv.confidence[:, :half][uv.coverage[:, :half]], uv.confidence[:, half:][uv.coverage[:, half:]]
    assert abs(left.mean() - right.mean()) > 0.1


def test_unwrap_rejects_mismatched_image(sfm, labelled_dir):
    fit = fit_proxy(sfm, read_pts(labelled_dir / "image_0010.pts"), (1024, 1280))
    with pytest.raises(ValueError, match="fit was made"):
        unwrap_texture(np.zeros((10, 10, 3), np.uint8), sfm, fit)
