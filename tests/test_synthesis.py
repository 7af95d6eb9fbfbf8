"""Detail synthesis: the paper's Gaussian weight, patch grid, exact stitching, seamlessness, coverage."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fds.data.patches import patch_grid
from fds.facemodel import region_masks
from fds.synthesis import (
    gaussian_weight,
    paper_map_input,
    synthesize_displacement,
    texture_to_tensor,
    upsample_mask,
)

R, P = 256, 64


def smooth_texture(r: int = R) -> np.ndarray:
    yy, xx = np.mgrid[0:r, 0:r] / r
    v = 0.5 + 0.2 * np.sin(2 * np.pi * 1.3 * xx) * np.cos(2 * np.pi * 0.9 * yy) + 0.15 * xx
    return np.repeat(v[..., None], 3, -1).astype(np.float32)


def centred_identity(x: torch.Tensor) -> torch.Tensor:
    """Returns the network input itself (V minus the patch mean, x2), halved: each patch has its own offset."""
    return x[:, :1] / 2


def test_weight_is_fspecial_gaussian_256_50():
    w = gaussian_weight(256)
    # fspecial: [x, y] = meshgrid(-(n-1)/2 : (n-1)/2), h = exp(-(x² + y²) / (2σ²)), h /= sum(h)
    ax = np.linspace(-127.5, 127.5, 256)
    x, y = np.meshgrid(ax, ax)
    h = np.exp(-(x**2 + y**2) / (2 * 50.0**2))
    np.testing.assert_allclose(w, h / h.sum(), rtol=1e-12, atol=0)
    assert w.sum() == pytest.approx(1.0, abs=1e-12)
    # the numbers measured on areas.mat['weight']
    assert w.max() == pytest.approx(6.50e-5, rel=5e-3)
    assert w[0, 0] == pytest.approx(9.75e-8, rel=5e-3)
    assert np.array_equal(w, w.T) and np.array_equal(w, w[::-1, ::-1])


def test_weight_sigma_scales_with_patch_size():
    w64 = gaussian_weight(64)
    w256 = gaussian_weight(256)
    # same shape in relative coordinates: the value at a quarter of the way in, relative to the centre
    assert w64[16, 32] / w64.max() == pytest.approx(w256[64, 128] / w256.max(), rel=0.05)
    with pytest.raises(ValueError, match="sigma"):
        gaussian_weight(64, sigma=0)


def test_patch_grid_covers_mask_and_reaches_edges():
    mask = np.zeros((R, R), bool)
    mask[40:200, 10:250] = True
    grid = patch_grid(mask, P, P // 4)
    covered = np.zeros_like(mask)
    for r, c in grid:
        covered[r : r + P, c : c + P] = True
        assert mask[r : r + P, c : c + P].any()
    assert covered[mask].all()
    # every window starts on the stride grid, except the last one of a row or column, flush with the far edge
    assert ((grid % (P // 4) == 0) | (grid == R - P)).all()
    full = patch_grid(np.ones((100, 100), bool), 64, 16)
    assert full[:, 0].max() == 100 - 64 and full[:, 1].max() == 100 - 64  # flush last window
    with pytest.raises(ValueError, match="patch size"):
        patch_grid(np.ones((32, 32), bool), 64, 16)


def test_stitching_is_exact_for_a_consistent_predictor():
    """If every patch agrees with the map (no per-patch offset), D = Σw·patch/Σw reproduces it exactly."""
    tex = smooth_texture()
    res = synthesize_displacement(
        tex, lambda x: x, resolution=R, disp_scale_mm=2.0, patch_size=P, preprocess=lambda rgb: rgb[:, :1]
    )
    np.testing.assert_allclose(res.displacement_mm, 2.0 * tex[..., 0], atol=1e-5)
    assert res.coverage.all()
    n = len(range(0, R - P + 1, P // 4))
    assert res.patches["face"].shape == (n * n, 2)


def _edges(starts: np.ndarray, size: int) -> list[int]:
    """Columns e where a window starts or ends: the step across a border is d[:, e] − d[:, e − 1]."""
    return sorted({int(s) for s in starts if s > 0} | {int(s) + P for s in starts if s + P < size})


def _border_and_inner_steps(d: np.ndarray, starts: np.ndarray) -> tuple[float, float]:
    edges = _edges(starts, d.shape[1])
    gx = np.abs(np.diff(d, axis=1))  # gx[:, e-1] is the step between columns e-1 and e
    border = gx[:, [e - 1 for e in edges]]
    inner = np.delete(gx, [e - 1 for e in edges], axis=1)
    return float(border.max()), float(inner.max())


def _border_jump(d: np.ndarray, starts: np.ndarray) -> float:
    """Largest jump across a border beyond the linear trend of its neighbours (a step, not a slope)."""
    g = np.diff(d, axis=1)
    jump = np.abs(g[:, 1:-1] - (g[:, :-2] + g[:, 2:]) / 2)  # jump[:, k] is between columns k+1 and k+2
    return float(jump[:, [e - 2 for e in _edges(starts, d.shape[1])]].max())


def wrinkled_texture(r: int = R) -> np.ndarray:
    yy, xx = np.mgrid[0:r, 0:r] / r
    v = 0.5 + 0.2 * np.sin(2 * np.pi * 1.3 * xx) * np.cos(2 * np.pi * 0.9 * yy) + 0.15 * xx
    v += 0.03 * np.sin(2 * np.pi * (19 * xx + 7 * yy))  # fine wrinkles
    return np.repeat(v[..., None], 3, -1).astype(np.float32)


def high_pass(x: torch.Tensor) -> torch.Tensor:
    """A local detail filter on each patch; its zero padding puts artefacts along every patch rim, as a
    convolutional network's padding does."""
    v = x[:, :1]
    return v - F.avg_pool2d(v, 5, stride=1, padding=2, count_include_pad=True)


def test_seamless_no_step_at_patch_borders():
    """The stitched map changes no faster across patch borders than inside the patches (both axes), although
    every patch has artefacts along its rim; plain averaging (flat weights) fails the same check."""
    res = synthesize_displacement(wrinkled_texture(), high_pass, resolution=R, disp_scale_mm=1.0, patch_size=P)
    grid = res.patches["face"]
    for d, starts in ((res.displacement_mm, grid[:, 1]), (res.displacement_mm.T, grid[:, 0])):
        border, inner = _border_and_inner_steps(d, starts)
        assert border <= inner
    flat = synthesize_displacement(
        wrinkled_texture(), high_pass, resolution=R, disp_scale_mm=1.0, patch_size=P, sigma=1e9
    )
    border, inner = _border_and_inner_steps(flat.displacement_mm, flat.patches["face"][:, 1])
    assert border > inner


def test_per_patch_offsets_are_blended_away():
    """Each patch centred on its own mean (a different offset per patch, as the paper's input): the Gaussian
    blend keeps the jumps at window borders under 15 % of what flat averaging leaves."""
    tex = smooth_texture()
    res = synthesize_displacement(tex, centred_identity, resolution=R, disp_scale_mm=1.0, patch_size=P)
    flat = synthesize_displacement(tex, centred_identity, resolution=R, disp_scale_mm=1.0, patch_size=P, sigma=1e9)
    grid = res.patches["face"]
    for axis, starts in ((1, grid[:, 1]), (0, grid[:, 0])):
        d, d_flat = (m if axis == 1 else m.T for m in (res.displacement_mm, flat.displacement_mm))
        assert _border_jump(d, starts) < 0.15 * _border_jump(d_flat, starts)


def test_coverage_masks_outside_texels_to_zero():
    mask = np.zeros((R, R), bool)
    mask[30:150, 60:220] = True
    res = synthesize_displacement(
        smooth_texture(), lambda x: torch.full_like(x[:, :1], 0.5), resolution=R, disp_scale_mm=2.0,
        mask=mask, patch_size=P,
    )
    assert np.array_equal(res.coverage, mask)
    np.testing.assert_allclose(res.displacement_mm[mask], 1.0, atol=1e-6)  # 0.5 units x 2 mm
    assert (res.displacement_mm[~mask] == 0).all()
    assert res.displacement_mm.dtype == np.float32


def test_face_mask_of_the_sfm_chart(sfm):
    mask = region_masks(sfm, 128)["face"]
    res = synthesize_displacement(
        smooth_texture(128), centred_identity, resolution=128, disp_scale_mm=1.0, mask=mask, patch_size=32
    )
    assert np.array_equal(res.coverage, mask)
    assert np.abs(res.displacement_mm[mask]).max() > 0


def test_regions_route_patches_and_blend():
    top = np.zeros((R, R), bool)
    top[: R // 2 + 32] = True
    bottom = np.zeros((R, R), bool)
    bottom[R // 2 - 32 :] = True
    calls: list[str] = []

    def predict(x, region):
        calls.append(region)
        return torch.full_like(x[:, :1], 1.0 if region == "forehead" else -1.0)

    res = synthesize_displacement(
        smooth_texture(), predict, resolution=R, disp_scale_mm=1.0, regions={"forehead": top, "mouth": bottom},
        patch_size=P, batch_size=7,
    )
    assert set(calls) == {"forehead", "mouth"} and set(res.patches) == {"forehead", "mouth"}
    d = res.displacement_mm
    assert d[0, R // 2] == pytest.approx(1.0) and d[-1, R // 2] == pytest.approx(-1.0)
    col = d[:, R // 2]
    assert (np.diff(col) <= 1e-6).all()  # a smooth monotone blend from +1 to −1 across the overlap
    assert np.abs(np.diff(col)).max() < 0.2


def test_full_mode_and_predict_step_mapping():
    tex = smooth_texture()
    seen = {}

    def predict(x):
        seen["shape"] = tuple(x.shape)
        return {"displacement": x[:, :1] / 2, "displacement_mm": None}

    res = synthesize_displacement(tex, predict, resolution=R, disp_scale_mm=3.0, mode="full", patch_size=P)
    assert seen["shape"] == (1, 1, R, R)
    expected = paper_map_input(texture_to_tensor(tex, R), P)[0, 0].numpy() / 2 * 3.0
    np.testing.assert_allclose(res.displacement_mm, expected, atol=1e-6)
    assert res.mode == "full" and res.coverage.all()


def test_texture_resampling_and_bad_input():
    t = texture_to_tensor((np.ones((64, 64, 3)) * 255).astype(np.uint8), 32)
    assert t.shape == (1, 3, 32, 32) and torch.allclose(t, torch.ones(()))
    with pytest.raises(ValueError, match="uv_texture"):
        texture_to_tensor(np.zeros((4, 8, 8, 3), np.float32), 32)
    with pytest.raises(ValueError, match="predict must return"):
        synthesize_displacement(smooth_texture(), lambda x: x[:, :1, :8], resolution=R, disp_scale_mm=1.0, patch_size=P)
    with pytest.raises(ValueError, match="non-finite"):
        synthesize_displacement(
            smooth_texture(), lambda x: x[:, :1] * float("nan"), resolution=R, disp_scale_mm=1.0, patch_size=P
        )
    with pytest.raises(ValueError, match="mask"):
        synthesize_displacement(smooth_texture(), centred_identity, resolution=R, disp_scale_mm=1.0,
                                mask=np.ones((10, 10), bool), patch_size=P)
    with pytest.raises(ValueError, match="mode"):
        synthesize_displacement(smooth_texture(), centred_identity, resolution=R, disp_scale_mm=1.0, mode="tiles")


def test_upsample_mask_is_nearest_at_texel_centres(sfm):
    low = region_masks(sfm, 64)["face"]
    up = upsample_mask(low, 256)
    assert up.shape == (256, 256) and np.array_equal(up[1::4, 1::4], low)
    assert abs(up.mean() - region_masks(sfm, 256)["face"].mean()) < 0.01


def test_shared_network_predicts_each_window_once(sfm):
    """With one network for every region, windows that the forehead and mouth grids share run once and are
    blended once per grid: the map equals the per-region run's up to float32 summation order."""
    from fds.facemodel.uvchart import uv_chart

    r = 512
    chart = uv_chart(sfm, r)
    regions = {name: chart.zone_mask(name) for name in ("forehead", "mouth")}
    tex = wrinkled_texture(r)
    seen: list[int] = []

    def predict(x: torch.Tensor, region: str) -> torch.Tensor:
        seen.append(x.shape[0])
        return high_pass(x)

    args = dict(resolution=r, disp_scale_mm=1.0, regions=regions, patch_size=128, batch_size=7)
    ref = synthesize_displacement(tex, predict, **args)
    calls_ref, seen[:] = sum(seen), []
    fast = synthesize_displacement(tex, predict, shared_network=True, **args)
    shared = {tuple(c) for c in ref.patches["forehead"]} & {tuple(c) for c in ref.patches["mouth"]}
    assert shared and sum(seen) == calls_ref - len(shared)
    np.testing.assert_array_equal(fast.coverage, ref.coverage)
    # float32 sums of ≤ 16 overlapping windows in another order: a few ulps of |d| ≤ 1
    np.testing.assert_allclose(fast.displacement_mm, ref.displacement_mm, atol=1e-6)
