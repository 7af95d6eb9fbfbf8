"""The photo scale (fds.proxy.photo_scale): log2 photo pixels per UV texel, from the fitted proxy.

The reference is computed another way: per triangle of the chart, the ratio of its area in the photo (its three
vertices projected) to its area in UV texels. Within a triangle the projection of a piecewise-linear mesh is affine,
so the texel's Jacobian determinant is exactly that ratio wherever the difference stencil stays in one triangle."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fds.facemodel.uvchart import uv_chart
from fds.proxy.fit import FitResult
from fds.proxy.photo_scale import mirror_scale, photo_scale, photo_scale_of_fit

R = 512


def _fit(fm, yaw_deg: float = 0.0, pitch_deg: float = 0.0, scale_px_per_mm: float = 3.0) -> FitResult:
    """The mean face seen by a scaled orthographic camera turned by ``yaw_deg`` / ``pitch_deg``, face centred in a
    1000² photo (only the camera matters to the photo scale)."""
    y, p = np.deg2rad(yaw_deg), np.deg2rad(pitch_deg)
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    rot = (rx @ ry).astype(np.float32)
    centre = 500.0 / scale_px_per_mm
    z = np.zeros(0, np.float32)
    return FitResult(vertices_mm=np.asarray(fm.vertices(), np.float32), id_coeffs=z, expr_coeffs=z, rotation=rot,
                     translation_mm=np.array([centre, centre, 0], np.float32), scale_px_per_mm=scale_px_per_mm,
                     image_size=(1000, 1000), yaw_pitch_roll_deg=(yaw_deg, pitch_deg, 0.0),
                     modelview=np.eye(4, dtype=np.float32), projection=np.eye(4, dtype=np.float32),
                     landmark_error_px=np.zeros(68, np.float32), reprojection_error_px=0.0)


def _per_triangle_reference(fm, fit: FitResult) -> tuple[np.ndarray, np.ndarray]:
    """log2 √(photo area / texel area) of each texel's triangle, and the texels whose 4-neighbour stencil lies in
    that one triangle (where the reference is exact)."""
    chart = uv_chart(fm, R)
    px = fit.project(fit.vertices_mm)  # [V, 2]
    uv_tri = fm.uv[fm.uv_triangles] * R  # [T, 3, 2] texels (col, row)
    xy_tri = px[fm.triangles]  # [T, 3, 2] photo px

    def area(t: np.ndarray) -> np.ndarray:
        a, b = t[:, 1] - t[:, 0], t[:, 2] - t[:, 0]
        return np.abs(a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]) / 2

    ratio = area(xy_tri) / np.maximum(area(uv_tri), 1e-12)
    tid = chart.tri_id
    ref = 0.5 * np.log2(np.maximum(ratio[np.maximum(tid, 0)], 1e-12))
    inner = np.zeros_like(chart.covered)
    c = tid[1:-1, 1:-1]
    inner[1:-1, 1:-1] = (c >= 0) & (tid[1:-1, 2:] == c) & (tid[1:-1, :-2] == c) & (tid[2:, 1:-1] == c) \
        & (tid[:-2, 1:-1] == c)
    return ref, inner


@pytest.mark.parametrize(("yaw", "pitch", "scale"), [(0.0, 0.0, 3.0), (30.0, 10.0, 3.0), (-40.0, -15.0, 0.8)])
def test_the_photo_scale_is_each_triangles_area_ratio(sfm, yaw, pitch, scale):
    fit = _fit(sfm, yaw, pitch, scale)
    got = photo_scale_of_fit(sfm, fit, R)
    assert got.shape == (1, R, R) and got.dtype == torch.float32
    ref, inner = _per_triangle_reference(sfm, fit)
    facing = inner & (ref > -4)  # clear of the clip and of nearly edge-on triangles (area → 0)
    assert facing.sum() > 0.2 * inner.sum()
    # exact there up to float32 interpolation of the projected positions (~1e-4 px over ~1 px differences)
    err = np.abs(got[0].numpy() - ref)[facing]
    assert err.max() < 1e-2, f"photo scale off by up to {err.max():.3f} (log2) inside triangles"


def test_doubling_the_face_in_the_photo_adds_one_and_a_turn_shrinks_the_far_side(sfm):
    base = photo_scale_of_fit(sfm, _fit(sfm, scale_px_per_mm=2.0), R)[0]
    double = photo_scale_of_fit(sfm, _fit(sfm, scale_px_per_mm=4.0), R)[0]
    chart = uv_chart(sfm, R)
    ok = torch.from_numpy(chart.covered) & (base > -4)  # clear of nearly edge-on texels (float32 cancellation)
    torch.testing.assert_close(double[ok] - base[ok], torch.ones(int(ok.sum())), atol=1e-3, rtol=0)
    turned = photo_scale_of_fit(sfm, _fit(sfm, yaw_deg=35.0, scale_px_per_mm=2.0), R)[0]
    cheeks = chart.frame_xy  # landmark frame: x = the face's left-right, y up (eye distances)
    band = (np.abs(cheeks[..., 1] + 0.5) < 0.2) & chart.covered
    left, right = band & (cheeks[..., 0] < -0.6), band & (cheeks[..., 0] > 0.6)
    change_left = float((turned - base)[torch.from_numpy(left)].median())
    change_right = float((turned - base)[torch.from_numpy(right)].median())
    # a 35° turn tilts one cheek towards the camera and the other away: their sizes in the photo move apart
    assert abs(change_left - change_right) > 0.2, (change_left, change_right)


def test_the_map_needs_finite_vertices_and_mirrors_as_an_image(sfm):
    with pytest.raises(ValueError, match="vertices_px"):
        photo_scale(sfm, np.full((sfm.num_vertices, 2), np.nan), R)
    s = torch.arange(12.0).view(1, 3, 4)
    torch.testing.assert_close(mirror_scale(s), s.flip(-1))


def test_a_mirrored_training_patch_carries_the_mirrored_scale(sfm):
    """Training mirrors half its patches: the scale behind the cue is flipped with the texture (and the cue
    mirrored as ``fds.proxy.shading_cue.mirror_cue`` says)."""
    from fds.data.scans import _geometry_item
    from fds.proxy.shading_cue import mirror_cue

    torch.manual_seed(0)
    tex = (torch.rand(3, R, R) * 255).to(torch.uint8)
    extra = torch.cat([torch.randn(2, R, R), photo_scale_of_fit(sfm, _fit(sfm, yaw_deg=30.0), R)])  # cue, scale
    disp, mask = torch.randn(1, R, R), torch.ones(1, R, R, dtype=torch.bool)
    top, left, p = 200, 120, 64
    args = (tex, disp, mask, top, left, p, "v_cue_scale", 2.0)
    plain, mirrored = _geometry_item(*args, False, extra=extra), _geometry_item(*args, True, extra=extra)
    window = extra[:, top:top + p, left:left + p]
    assert plain["input"].shape == (4, p, p)
    torch.testing.assert_close(plain["input"][3:], window[2:])
    torch.testing.assert_close(mirrored["input"][3:], window[2:].flip(-1))
    torch.testing.assert_close(mirrored["input"][1:3], mirror_cue(window[:2]))
    assert not torch.allclose(window[2:].flip(-1), window[2:])  # a turned head's scale is not symmetric
    alone = _geometry_item(*args[:6], "v_scale", 2.0, True, extra=extra[2:])  # the scale without the cue
    torch.testing.assert_close(alone["input"], mirrored["input"][[0, 3]])


def test_a_cue_checkpoint_widened_to_the_scale_predicts_as_before_until_the_scale_weights_move(tmp_path, sfm,
                                                                                               astronaut):
    """End to end through ``DetailPredictor``: a ``v_cue`` network widened to ``v_cue_scale`` (the scale's weights
    at 0) gives the ``v_cue`` map on a real texture; once the scale's weights move, the map moves, and it differs
    between a small and a large face in the photo. Without the fit it refuses, naming what to pass."""
    from PIL import Image

    from fds.detail import DetailPredictor, FitRequired
    from fds.models.checkpoint import read_detail_checkpoint

    shipped = "checkpoints/dfdn_lite_v.safetensors"  # the V-input round the cue lineage starts from
    _, meta = read_detail_checkpoint(shipped)

    cue_path = _widened(tmp_path, meta, 3, "v_cue", shipped, cue_weight=0.5)
    scale_path = _widened(tmp_path, meta, 4, "v_cue_scale", cue_path)
    texture = np.asarray(Image.fromarray(astronaut).resize((meta.map_resolution,) * 2))
    fit = _fit(sfm, scale_px_per_mm=3.0)
    scale_pred = DetailPredictor.from_checkpoint(scale_path, batch_size=16)
    assert scale_pred.meta.channels == "v_cue_scale" and scale_pred.needs_fit
    with pytest.raises(FitRequired, match="proxy_result"):
        scale_pred.full_map(texture)
    base = DetailPredictor.from_checkpoint(cue_path, batch_size=16).full_map(texture).displacement_mm
    same = scale_pred.full_map(texture, fit).displacement_mm
    np.testing.assert_allclose(same, base, atol=1e-5 * np.abs(base).max())
    with torch.no_grad():
        scale_pred.module.generator.models["shared"].pdim.down[0][0].weight[:, 3:] = 0.3
    scale_pred = scale_pred.with_module(scale_pred.module, scale_path)
    near = scale_pred.full_map(texture, fit).displacement_mm
    far = scale_pred.full_map(texture, _fit(sfm, scale_px_per_mm=0.5)).displacement_mm
    assert np.abs(near - base).max() > 100 * 1e-5 * np.abs(base).max()  # far beyond the float noise allowed above
    assert np.abs(near - far).max() > 100 * 1e-5 * np.abs(base).max()



def test_the_v_checkpoint_widened_to_v_and_scale_predicts_as_before_until_the_scale_weight_moves(tmp_path, sfm,
                                                                                                 astronaut):
    """``v_scale``: the scale alone behind V reaches the network through inference's path too."""
    from PIL import Image

    from fds.detail import DetailPredictor
    from fds.models.checkpoint import read_detail_checkpoint

    shipped = "checkpoints/dfdn_lite_v.safetensors"  # the V-input round the cue lineage starts from
    _, meta = read_detail_checkpoint(shipped)
    path = _widened(tmp_path, meta, 2, "v_scale", shipped)
    texture = np.asarray(Image.fromarray(astronaut).resize((meta.map_resolution,) * 2))
    pred = DetailPredictor.from_checkpoint(path, batch_size=16)
    base = DetailPredictor.from_checkpoint(shipped, batch_size=16).full_map(texture).displacement_mm
    fit = _fit(sfm, scale_px_per_mm=3.0)
    np.testing.assert_allclose(pred.full_map(texture, fit).displacement_mm, base, atol=1e-5 * np.abs(base).max())
    with torch.no_grad():
        pred.module.generator.models["shared"].pdim.down[0][0].weight[:, 1:] = 0.3
    pred = pred.with_module(pred.module, path)
    near = pred.full_map(texture, fit).displacement_mm
    far = pred.full_map(texture, _fit(sfm, scale_px_per_mm=0.5)).displacement_mm
    assert np.abs(near - far).max() > 100 * 1e-5 * np.abs(base).max()


def _widened(tmp_path, meta, cin: int, channels: str, start: str, cue_weight: float | None = None):
    """``start``'s weights widened into the same network reading ``cin`` input channels (``channels``), saved; with
    ``cue_weight`` the cue's first-layer weights are set to that multiple of V's (as a trained cue network's)."""
    from omegaconf import OmegaConf

    from fds.models.architecture import DFDNSpec
    from fds.models.checkpoint import load_start_weights, save_detail_checkpoint

    cfg = OmegaConf.merge(meta.architecture.to_config(),
                          {"generator": {"model": {"pdim": {"in_channels": cin}, "pdrm": {"in_channels": cin + 1}}},
                           "discriminator": {"model": {"in_channels": cin + 1}}})
    module = DFDNSpec.parse(OmegaConf.to_container(cfg), "model").build().eval()
    load_start_weights(module, start)
    if cue_weight is not None:
        with torch.no_grad():
            w = module.generator.models["shared"].pdim.down[0][0].weight
            w[:, 1:] = cue_weight * w[:, :1]
    return save_detail_checkpoint(tmp_path / f"{channels}.safetensors", module.state_dict(), cfg,
                                  map_resolution=meta.map_resolution, channels=channels, face_model=meta.face_model)


def test_a_face_outside_the_trained_scales_is_warned_at_any_texel_density(sfm):
    """:func:`photo_scale_warnings` on the mean face shrunk and grown in the photo: the warning comes exactly when
    the face's median scale leaves :data:`TRAINED_RANGE`, says which way, and does not depend on the map size
    (coarser texels hold more pixels each, and the bounds move with them)."""
    from fds.proxy.photo_scale import TRAINED_RANGE, face_photo_scale, photo_scale_warnings

    for px_per_mm in (0.15, 0.3, 0.6, 1.2, 2.4, 4.8, 9.6):
        fit = _fit(sfm, scale_px_per_mm=px_per_mm)
        told = []
        for res in (1024, R):
            median = face_photo_scale(photo_scale_of_fit(sfm, fit, res), sfm)
            warned = photo_scale_warnings(median, res, width_px=150.0 * px_per_mm)
            low, high = (x + np.log2(1024 / res) for x in TRAINED_RANGE)
            assert len(warned) == (not low <= median <= high), (px_per_mm, res, median, warned)
            if warned:
                assert ("smaller" if median < low else "larger") in warned[0] and f"{median:.2f}" in warned[0]
            told.append(bool(warned))
        assert told[0] == told[1], px_per_mm  # the same face is in or out of range at either density
    # the sweep reaches both sides and the inside (factor-2 steps are ~1 log2 unit, the range ~3 wide)
    medians = [face_photo_scale(photo_scale_of_fit(sfm, _fit(sfm, scale_px_per_mm=s), 1024), sfm) for s in (0.15, 9.6)]
    assert medians[0] < TRAINED_RANGE[0] and medians[1] > TRAINED_RANGE[1]


@pytest.mark.parametrize(("photo", "warned"), [("einstein", True), ("grace_hopper", False)])
def test_a_real_face_too_small_for_the_network_is_warned_in_the_detail_maps(photo, warned, labelled_dir,
                                                                            grace_hopper_path):
    """Einstein at the lectern (a face about 90 px across in an 817 × 1024 photo) is smaller than any photo-level
    training face, and ``DetailPredictor.predict`` says so with the shipped scale-reading checkpoint; Grace Hopper's
    portrait (about 190 px) lies inside the trained range and gets no such warning."""
    from fds.demo import SHIPPED_CHECKPOINT
    from fds.detail import DetailPredictor
    from fds.proxy.stage import ProxyStage

    path = labelled_dir / "einstein.jpg" if photo == "einstein" else grace_hopper_path
    result = ProxyStage()(path)[0]
    predictor = DetailPredictor.from_checkpoint(SHIPPED_CHECKPOINT)
    assert predictor.needs_fit
    got = [w for w in predictor(result).warnings if "trained on" in w]
    assert bool(got) == warned, got
    if warned:
        assert "smaller" in got[0] and "px wide" in got[0]


@pytest.mark.slow
def test_the_checkpoint_s_own_trained_range_decides_the_warning(tmp_path, grace_hopper_path, sfm):
    """A scale-reading checkpoint that stores the photo scales its training faces spanned is warned against that
    range, not the shipped one: the shipped weights with a range stored above Grace Hopper's face scale call her
    face smaller than any training face, one below calls it larger, one around it says nothing."""
    import dataclasses

    from safetensors.torch import save_file

    from fds.demo import SHIPPED_CHECKPOINT
    from fds.detail import DetailPredictor
    from fds.models.checkpoint import read_detail_checkpoint
    from fds.proxy.photo_scale import face_photo_scale
    from fds.proxy.stage import ProxyStage

    result = ProxyStage()(grace_hopper_path)[0]
    tensors, meta = read_detail_checkpoint(SHIPPED_CHECKPOINT)
    s = face_photo_scale(photo_scale_of_fit(sfm, result.fit, meta.map_resolution), sfm)
    for rng, expected in (((s + 0.5, s + 1.5), "smaller"), ((s - 1.5, s - 0.5), "larger"), ((s - 0.5, s + 0.5), None)):
        path = tmp_path / "ranged.safetensors"
        save_file(tensors, str(path), metadata=dataclasses.replace(meta, photo_scale_range=rng).to_metadata())
        got = [w for w in DetailPredictor.from_checkpoint(path)(result).warnings if "trained on" in w]
        assert len(got) == (expected is not None), (rng, got)
        if expected:
            assert expected in got[0] and f"{rng[0]:.2f} to {rng[1]:.2f}" in got[0]
