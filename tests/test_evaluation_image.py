"""Photo-level detail scoring (fds.evaluation_image): analytic cases and the renderer against baked geometry."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fds.evaluation_image import (
    PhotoDetailRenderer,
    line_relief_ratio,
    mirrored_field,
    score_detail_normals,
)

H = W = 128


def smooth_noise(seed: int, sigma: float = 1.0, amp: float = 0.05) -> np.ndarray:
    """A random detail-normal field ``[H, W, 3]``, correlated over ~σ px."""
    import kornia

    g = torch.randn(1, 3, H, W, generator=torch.Generator().manual_seed(seed))
    k = int(2 * round(3 * sigma) + 1)
    f = kornia.filters.gaussian_blur2d(g, (k, k), (sigma, sigma))
    return (amp * f / f.std())[0].permute(1, 2, 0).numpy()


@pytest.fixture(scope="module")
def head():
    """GT smooth normals (a sphere cap seen from the front), GT detail, the scored face mask."""
    yy, xx = np.mgrid[0:H, 0:W]
    x, y = (xx - W / 2) / (0.45 * W), -(yy - H / 2) / (0.45 * H)
    face = x**2 + y**2 < 0.9
    z = np.sqrt(np.clip(1 - x**2 - y**2, 0.0, 1.0))
    smooth = np.where(face[..., None], np.stack([x, y, z], -1), 0).astype(np.float32)
    delta = np.where(face[..., None], smooth_noise(0), 0).astype(np.float32)
    detailed = smooth + delta
    detailed /= np.maximum(np.linalg.norm(detailed, axis=-1, keepdims=True), 1e-12)
    detailed = np.where(face[..., None], detailed, 0)
    return smooth, detailed.astype(np.float32), face


def test_identical_scaled_and_absent_detail(head):
    smooth, detailed, face = head
    gt_delta = detailed - smooth
    same = score_detail_normals(gt_delta, detailed, smooth, face)["all"]
    assert same["detail_r"] == pytest.approx(1.0, abs=1e-5) and same["amplitude_ratio"] == pytest.approx(1.0, abs=1e-5)
    assert same["normal_deg"] < 0.05 < same["normal_deg_zero"]  # the GT's own detail restores the GT normal
    half = score_detail_normals(0.5 * gt_delta, detailed, smooth, face)["all"]
    # the high-pass is linear: half the detail is half the amplitude, the same pattern
    assert half["detail_r"] == pytest.approx(1.0, abs=1e-5) and half["amplitude_ratio"] == pytest.approx(0.5, abs=1e-5)
    assert same["normal_deg"] < half["normal_deg"] < half["normal_deg_zero"]
    zero = score_detail_normals(np.zeros_like(gt_delta), detailed, smooth, face)["all"]
    assert math.isnan(zero["detail_r"]) and zero["amplitude_ratio"] == 0.0
    assert zero["normal_deg"] == pytest.approx(zero["normal_deg_zero"], abs=1e-6)


def test_mirrored_gt_scores_at_chance(head):
    smooth, detailed, face = head
    mirrored = mirrored_field(detailed - smooth, face)
    s = score_detail_normals(mirrored, detailed, smooth, face)["all"]
    # the field is correlated over ~σ = 1 px: ≈ N / (4π σ²) independent values per component, so r of unrelated
    # fields has a standard deviation of about sqrt(4π / (3 N)); 5 of them
    n = face.sum()
    assert abs(s["detail_r"]) < 5 * math.sqrt(4 * math.pi / (3 * n))
    assert 0.8 < s["amplitude_ratio"] < 1.25  # the same field's statistics (a few rows fall off the mask)
    assert s["normal_deg"] > s["normal_deg_zero"]  # wrong detail is worse than none


def test_mirrored_field_flips_rows_about_the_mask_centre():
    mask = np.zeros((10, 4), bool)
    mask[2:7] = True  # rows 2..6: centre 4
    f = np.zeros((10, 4, 1), np.float32)
    f[2] = 1.0
    f[5] = 2.0
    m = mirrored_field(f, mask)
    assert m[6, 0, 0] == 1.0 and m[3, 0, 0] == 2.0 and m.sum() == 4 * 3.0
    with pytest.raises(ValueError, match="empty"):
        mirrored_field(f, np.zeros_like(mask))


def test_regions_are_scored_inside_the_scored_mask(head):
    smooth, detailed, face = head
    gt_delta = detailed - smooth
    top = np.zeros_like(face)
    top[: H // 2] = True
    pred = np.where(top[..., None], gt_delta, 0.0)  # detail only on the upper half
    s = score_detail_normals(pred, detailed, smooth, face, {"forehead": top, "chin": ~top, "nowhere": ~face})
    assert s["forehead"]["pixels"] + s["chin"]["pixels"] == s["all"]["pixels"] and "nowhere" not in s
    assert s["forehead"]["detail_r"] > 0.95 and s["forehead"]["amplitude_ratio"] > 0.9
    assert s["chin"]["amplitude_ratio"] < 0.2  # only the high-pass's spill across the half-way line
    assert s["forehead"]["normal_deg"] < s["forehead"]["normal_deg_zero"]


def test_line_relief_ratio_tells_grooved_lines_from_flat_ones(head):
    _, _, face = head
    lines = np.zeros_like(face)
    lines[40:42, 30:100] = True  # a drawn dark line, flat in the GT
    lines[80:81, 20:90] = True
    skin_relief = np.where((face & ~lines)[..., None], smooth_noise(1), 0)
    grooves = np.where(lines[..., None], np.array([0.0, 0.2, 0.0], np.float32), 0)
    assert line_relief_ratio(skin_relief, lines, face) < 0.5  # relief on the skin, none on the lines
    assert line_relief_ratio(skin_relief + grooves, lines, face) > 2  # grooves cut along the lines
    assert math.isnan(line_relief_ratio(np.zeros_like(skin_relief), lines, face))


@pytest.mark.slow  # ~30 s on a shared CPU core: bakes a 108k-triangle mesh and rasterises it
def test_renderer_matches_the_baked_detailed_mesh(sfm):
    """The detail normals looked up through the fitted pose equal those of the baked, displaced mesh rendered in
    that pose (camera frame, a turned head): conventions of pose, UV lookup and frames agree."""
    from fds.export.previews import detailed_normals, proxy_normals
    from fds.mesh.bake import bake_displacement
    from fds.mesh.meshdata import MeshData
    from fds.metrics import pearson_r
    from fds.render import interpolate, rasterize, scaled_ortho_to_clip

    r, size = 256, 192
    rows, cols = np.mgrid[0:r, 0:r] + 0.5
    d = np.zeros((r, r), np.float32)
    band = (rows > 0.1 * r) & (rows < 0.35 * r) & (cols > 0.25 * r) & (cols < 0.75 * r)  # forehead
    # crossed furrows, tilting the normals along u and v, so that a wrong frame shows on every component
    d[band] = 0.4 * (np.sin(2 * np.pi * rows[band] / 12.0) + np.sin(2 * np.pi * cols[band] / 12.0))
    yaw = math.radians(30)
    rot = np.array([[math.cos(yaw), 0, math.sin(yaw)], [0, 1, 0], [-math.sin(yaw), 0, math.cos(yaw)]], np.float32)
    v = sfm.mean_mm.astype(np.float32)
    s = 0.8 * size / float(np.ptp(v[:, 1]))
    t = np.array([size / 2 / s, size / 2 / s, 0.0])  # centre of the image
    renderer = PhotoDetailRenderer(v, sfm.triangles, sfm.uv, sfm.uv_triangles, rot, s, t, (size, size), r)
    delta = renderer.detail_delta(d)
    # reference: the displaced mesh, rendered in the same camera, its normals minus the proxy's (both camera frame)
    baked = bake_displacement(MeshData(v, sfm.triangles, sfm.uv, sfm.uv_triangles), d, levels=2)
    rt = torch.from_numpy(rot)

    def render(vertices: np.ndarray, triangles: np.ndarray, normals: np.ndarray) -> np.ndarray:
        tri = torch.from_numpy(np.asarray(triangles, np.int64))
        clip = scaled_ortho_to_clip(torch.from_numpy(vertices), rt, s * t[0], s * t[1], s, size, size)
        rast = rasterize(clip, tri, (size, size), backend="torch")
        return interpolate(torch.from_numpy(normals) @ rt.T, rast, tri)[0].numpy()

    ref = render(baked.mesh.vertices, baked.mesh.triangles, detailed_normals(baked)) - render(
        v, sfm.triangles, proxy_normals(MeshData(v, sfm.triangles)))
    inside = renderer.covered & (np.abs(ref).sum(-1) > 0.02)  # where the furrows tilt the normals
    assert inside.sum() > 500
    m = torch.from_numpy(inside)[None, None]
    p, q = (torch.from_numpy(a).permute(2, 0, 1)[None] for a in (delta, ref))
    assert pearson_r(p, q, m) > 0.9
    # the object-space normal map and the baked geometry agree to a median 1.5° on a 4° tilt (their own
    # cross-check in tests/export/test_previews.py): a relative vector error under 1.5 / 4
    err = np.sqrt(((delta - ref)[inside] ** 2).sum(-1).mean() / (ref[inside] ** 2).sum(-1).mean())
    assert err < 1.5 / 4
    assert np.abs(renderer.detail_delta(np.zeros_like(d))).max() == 0


def test_scored_regions_drop_brows_and_eye_openings():
    from fds.evaluation_image import PHOTO_LABELS, scored_regions

    region = np.zeros((40, 60), np.uint8)
    region[5:35, 5:55] = PHOTO_LABELS.index("cheeks") + 1
    region[5:10, 5:55] = PHOTO_LABELS.index("brows") + 1
    region[10:20, 10:50] = PHOTO_LABELS.index("eyes") + 1
    lm = np.full((68, 2), np.nan, np.float32)
    lm[36:42] = [[12, 15], [14, 13], [18, 13], [20, 15], [18, 17], [14, 17]]  # one eye opening (x, y), px
    scored, regions = scored_regions(region, lm)
    assert not scored[5:10].any() and not scored[15, 16]  # brows and the opening are out
    assert scored[11, 45] and regions["eyes"][11, 45]  # the lids / corners around the other eye stay
    assert regions["cheeks"].sum() + regions["eyes"].sum() == scored.sum()
    scored_no_lm, _ = scored_regions(region)
    assert not scored_no_lm[10:20, 10:50].any()  # without landmarks the whole eye region is left out
