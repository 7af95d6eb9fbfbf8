"""Patch preprocessing, placement and the full-map grid."""

import numpy as np
import pytest
import torch

from fds.data.patches import (
    LOG_FLOOR,
    candidate_origins,
    channels_of,
    grid_windows_in,
    in_channels,
    patch_grid,
    preprocess,
    random_origin,
    to_network_units,
)
from fds.facemodel.uvchart import uv_chart


def test_preprocess_value_channel_mean_removed_times_two():
    rgb = torch.rand(2, 3, 8, 8)
    x = preprocess(rgb)
    v = rgb.max(1, keepdim=True).values
    assert x.shape == (2, 1, 8, 8)
    assert torch.allclose(x, (v - v.mean(dim=(2, 3), keepdim=True)) * 2, atol=1e-5)
    assert torch.allclose(x.mean(dim=(2, 3)), torch.zeros(2, 1), atol=1e-5)
    y = preprocess(rgb, "rgb")
    assert y.shape == (2, 3, 8, 8) and torch.allclose(y.mean(dim=(2, 3)), torch.zeros(2, 3), atol=1e-5)
    with pytest.raises(ValueError, match="channels"):
        preprocess(rgb, "hsv")


def test_log_input_is_exposure_invariant_where_linear_input_is_not():
    """Halving a photo's exposure (V → V/2) moves the log input only through the floor: log((V + f/k)/(V + f)),
    after the patch mean is removed, spans at most log((lo + 2f)/(lo + f)) − log((hi + 2f)/(hi + f)) over V in
    [lo, hi]; the linear input moves by up to 2·(hi − lo)/2 = hi − lo."""
    torch.manual_seed(0)
    lo, hi = 0.3, 0.9
    rgb = lo + (hi - lo) * torch.rand(4, 3, 32, 32)
    rgb[:, 0] = rgb.amax(1)  # V spans [lo, hi] in every patch
    f = LOG_FLOOR
    bound = np.log((lo + 2 * f) / (lo + f)) - np.log((hi + 2 * f) / (hi + f))
    moved_log = (preprocess(rgb * 0.5, "logv") - preprocess(rgb, "logv")).abs().max().item()
    moved_lin = (preprocess(rgb * 0.5, "v") - preprocess(rgb, "v")).abs().max().item()
    assert moved_log <= bound + 1e-5
    assert moved_lin > 10 * bound
    x = preprocess(rgb, "logv")
    assert x.shape == (4, 1, 32, 32) and torch.allclose(x.mean(dim=(2, 3)), torch.zeros(4, 1), atol=1e-5)
    v = rgb.amax(1, keepdim=True)
    assert torch.allclose(x, torch.log(v + f) - torch.log(v + f).mean(dim=(2, 3), keepdim=True), atol=1e-5)
    assert [channels_of(False), channels_of(True), channels_of(False, True)] == ["v", "rgb", "logv"]
    with pytest.raises(ValueError, match="log_input"):
        channels_of(True, True)


def test_network_units_clip():
    d = to_network_units(np.array([-5.0, -1.0, 0.5, 3.0]), 2.0)
    assert torch.allclose(d, torch.tensor([-1.0, -0.5, 0.25, 1.0]))


def test_zones_and_patch_placement(fm):
    chart = uv_chart(fm, 128)
    fore, mouth = chart.zone_mask("forehead"), chart.zone_mask("mouth")
    rows = np.arange(128)[:, None].repeat(128, 1)
    assert rows[fore].mean() < rows[mouth].mean()  # forehead zone above the mouth zone (row 0 = top)
    assert (fore & mouth).any() and chart.covered[fore].all()
    cands = candidate_origins(fore, chart.covered, 32, min_valid=0.6)
    rng = np.random.default_rng(0)
    for _ in range(20):
        t, l = random_origin(rng, cands, 128, 32)
        assert 0 <= t <= 96 and 0 <= l <= 96
        assert chart.covered[t:t + 32, l:l + 32].mean() >= 0.5


def test_grid_covers_the_zone(fm):
    chart = uv_chart(fm, 128)
    zone = chart.zone_mask("face")
    grid = patch_grid(zone, 32)
    assert (np.diff(np.unique(grid[:, 0])) <= 8).all()  # stride P/4
    hit = np.zeros_like(zone)
    for t, l in grid:
        hit[t:t + 32, l:l + 32] = True
    assert hit[zone].all()


def test_grid_windows_in_keeps_the_windows_training_could_draw(fm):
    chart = uv_chart(fm, 128)
    zone = chart.zone_mask("face")
    valid = chart.covered.copy()
    valid[:, 64:] = False  # the photo saw one half of the face (a turned head)
    kept = grid_windows_in(zone, valid, 32, min_valid=0.5)
    grid = {tuple(w) for w in patch_grid(zone, 32)}
    assert len(kept) > 0 and {tuple(w) for w in kept} <= grid
    for t, l in kept:
        assert zone[t + 16, l + 16] and valid[t:t + 32, l:l + 32].mean() >= 0.5
    # every grid window that meets both conditions is kept: the rest are the rim and the unseen half
    full = [w for w in grid if zone[w[0] + 16, w[1] + 16] and valid[w[0]:w[0] + 32, w[1]:w[1] + 32].mean() >= 0.5]
    assert len(kept) == len(full) < len(grid)
    assert (kept[:, 1] < 64).all()  # no window centred in the unseen half
    with pytest.raises(ValueError, match="differ in shape"):
        grid_windows_in(zone, valid[:64], 32)


def test_v_cue_input_is_v_then_the_cue_unchanged():
    torch.manual_seed(0)
    patch = torch.rand(2, 5, 8, 8)  # RGB, then the 2 shading-cue channels
    x = preprocess(patch, "v_cue")
    v = patch[:, :3].amax(1, keepdim=True)
    assert x.shape == (2, 3, 8, 8)
    assert torch.allclose(x[:, :1], preprocess(patch[:, :3], "v"), atol=1e-6)
    assert torch.equal(x[:, 1:], patch[:, 3:])  # the cue is a per-texel field in its own units: no mean removed
    assert not torch.allclose(x[:, :1], v)
    with pytest.raises(ValueError, match=r"channels='v_cue' must be \[B, 5, H, W\]"):
        preprocess(patch[:, :3], "v_cue")
    assert channels_of(False, False, True) == "v_cue"
    with pytest.raises(ValueError, match="at most one input mode"):
        channels_of(False, True, True)


def test_photo_scale_input_rides_unchanged_behind_the_cue():
    torch.manual_seed(0)
    patch = torch.rand(2, 6, 8, 8)  # RGB, the 2 shading-cue channels, then the photo scale
    x = preprocess(patch, "v_cue_scale")
    assert x.shape == (2, 4, 8, 8) and in_channels("v_cue_scale") == 4
    assert torch.allclose(x[:, :3], preprocess(patch[:, :5], "v_cue"), atol=1e-6)
    assert torch.equal(x[:, 3:], patch[:, 5:])  # an absolute size: no patch mean removed
    with pytest.raises(ValueError, match=r"channels='v_cue_scale' must be \[B, 6, H, W\]"):
        preprocess(patch[:, :5], "v_cue_scale")
    assert channels_of(False, False, True, True) == "v_cue_scale"
    alone = preprocess(patch[:, [0, 1, 2, 5]], "v_scale")  # V and the scale, without the cue
    assert alone.shape == (2, 2, 8, 8) and in_channels("v_scale") == 2
    assert torch.equal(alone[:, :1], x[:, :1]) and torch.equal(alone[:, 1:], patch[:, 5:])
    assert channels_of(False, False, False, True) == "v_scale"
    with pytest.raises(ValueError, match="photo_scale=true goes with the HSV V input"):
        channels_of(False, True, False, True)


def test_luma_input_replaces_v_and_ignores_jpeg_chroma_subsampling():
    """'y_cue_scale' reads Rec. 601 luma where 'v_cue_scale' reads V, and keeps the cue and the scale as they are. On
    a real photo (scikit-image's astronaut) JPEG's 4:2:0 chroma subsampling (quality 100: a unit quantisation step)
    moves V, the red channel on skin, while luma only moves by the codec's rounding: under half a grey level."""
    from skimage.data import astronaut

    from fds.data.photo_render import jpeg_roundtrip

    torch.manual_seed(0)
    patch = torch.rand(2, 6, 8, 8)
    x = preprocess(patch, "y_cue_scale")
    y = 0.299 * patch[:, 0:1] + 0.587 * patch[:, 1:2] + 0.114 * patch[:, 2:3]
    assert x.shape == (2, 4, 8, 8) and in_channels("y_cue_scale") == 4
    assert torch.allclose(x[:, :1], (y - y.mean(dim=(2, 3), keepdim=True)) * 2, atol=1e-6)
    assert torch.equal(x[:, 1:], preprocess(patch, "v_cue_scale")[:, 1:])
    assert channels_of(False, False, True, True, luma=True) == "y_cue_scale"
    with pytest.raises(ValueError, match="luma=true goes with shading_cue=true and photo_scale=true"):
        channels_of(False, False, False, True, luma=True)

    photo = astronaut()[40:240, 150:330]  # her face, uint8 RGB

    def first_channel(image: np.ndarray, channels: str) -> torch.Tensor:  # grey levels of the 8-bit photo
        t = torch.from_numpy(image.astype(np.float32) / 255).permute(2, 0, 1)[None]
        return preprocess(torch.cat([t, torch.zeros(1, 3, *t.shape[2:])], 1), channels)[0, 0] * 255 / 2

    moved = {c: float((first_channel(photo, c) - first_channel(jpeg_roundtrip(photo, 100), c)).abs().mean())
             for c in ("y_cue_scale", "v_cue_scale")}
    assert moved["y_cue_scale"] < 0.5, moved
    assert moved["v_cue_scale"] > moved["y_cue_scale"], moved
