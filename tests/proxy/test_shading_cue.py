"""The shading cue (fds.proxy.shading_cue): the light fitted from a texture, as brightness change per radian of tilt.

The analytic case: the SFM mean face shaded by a known SH light with a constant albedo, unwrapped into its own UV
chart. Its cue must be the cue of that light, computed directly from the light's SH (∇ₙS · e / S)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fds.proxy.shading_cue import _template_frame, mirror_cue, shading_cue
from fds.render.shading import radiance_sh_from_function, sh_irradiance

R = 256


def _light(direction, ambient: float = 0.3) -> torch.Tensor:
    """SH radiance ``[1, 1, 9]`` of a soft key light from ``direction`` (model frame: x left of the face's right,
    y up, z out of the face) over a uniform ambient."""
    d = torch.tensor(direction, dtype=torch.float64)
    d = d / d.norm()
    sh = radiance_sh_from_function(lambda w: (ambient + 3.0 * (w @ d).clamp_min(0) ** 8)[:, None])
    return sh.float()[None]


def _shaded_texture(sfm, sh: torch.Tensor, albedo: float = 0.6) -> np.ndarray:
    """The mean face under ``sh`` in its UV chart: uint8 ``[R, R, 3]``, 0 outside the chart."""
    n, _, _, ok = _template_frame(sfm, R)
    s = albedo * sh_irradiance(n, sh)[0, 0]
    v = torch.where(ok[0, 0], s, torch.zeros_like(s)).clamp(0, 1)
    return (v[..., None].expand(-1, -1, 3) * 255).round().to(torch.uint8).numpy()


def _true_cue(sfm, sh: torch.Tensor) -> torch.Tensor:
    n, e_col, e_row, ok = _template_frame(sfm, R)
    n = n.clone().requires_grad_(True)
    s = sh_irradiance(n, sh)
    (g,) = torch.autograd.grad(s.sum(), n)
    cue = torch.cat([(g * e_col).sum(1, keepdim=True), (g * e_row).sum(1, keepdim=True)], 1) / s.detach()
    return torch.where(ok, cue, torch.zeros_like(cue))[0].detach()


@pytest.mark.parametrize("direction", [(-1.0, 0.6, 1.0), (1.0, -0.2, 0.5), (0.0, 0.0, 1.0)])
def test_the_cue_of_a_shaded_face_is_its_lights_cue(sfm, direction):
    sh = _light(direction)
    tex = _shaded_texture(sfm, sh)
    got, want = shading_cue(tex, sfm), _true_cue(sfm, sh)
    assert got.shape == (2, R, R) and got.dtype == torch.float32
    seen = torch.from_numpy(tex[..., 0] > 10)
    # the light is order-2 SH and the albedo constant, so the fit can recover both: what is left is the uint8
    # quantisation of V (0.2-0.6 here, < 1 % per texel) and the smooth albedo's edge effects at the chart border.
    # (A hard light is not order-2 SH: at a shadow terminator the true cue jumps, which the fit cannot follow.)
    g, w = got[:, seen], want[:, seen]
    cos = torch.nn.functional.cosine_similarity(g.flatten(), w.flatten(), dim=0)
    assert cos > 0.99, f"cue direction off: cosine {cos:.3f} with the light's"
    ratio = g.norm() / w.norm()
    assert 0.95 < ratio < 1.05, f"cue strength {ratio:.2f}× the light's"


def test_opposite_lights_give_opposite_cues(sfm):
    """The negative control: the light from the face's left and from its right must not give the same cue."""
    left = shading_cue(_shaded_texture(sfm, _light((1.0, 0.0, 0.6))), sfm)
    right = shading_cue(_shaded_texture(sfm, _light((-1.0, 0.0, 0.6))), sfm)
    corr = torch.corrcoef(torch.stack([left[0].flatten(), right[0].flatten()]))[0, 1]
    assert corr < -0.5, f"the u cue of lights from opposite sides correlates {corr:.2f}"


def test_a_mirrored_texture_has_the_mirrored_cue(sfm):
    """Training mirrors patches with :func:`mirror_cue`; inference computes the mirrored texture's cue afresh. The
    two must agree, which needs the chart to be left-right symmetric (it is, to about a texel)."""
    tex = _shaded_texture(sfm, _light((-1.0, 0.5, 0.8)))
    afresh = shading_cue(np.ascontiguousarray(tex[:, ::-1]), sfm)
    rule = mirror_cue(shading_cue(tex, sfm))
    both = (afresh != 0) & (rule != 0)
    assert both.float().mean() > 0.3
    err = (afresh - rule)[both].pow(2).mean().sqrt() / rule[both].pow(2).mean().sqrt()
    assert err < 0.25, f"mirrored cue differs from the mirror rule by {err:.2f} of its RMS"
    # and the rule is not vacuous: without negating the u component it disagrees
    wrong = torch.flip(shading_cue(tex, sfm), dims=[-1])
    err_wrong = (afresh - wrong)[both].pow(2).mean().sqrt() / rule[both].pow(2).mean().sqrt()
    assert err_wrong > 2 * err


def test_unseen_texels_and_empty_textures_give_no_cue(sfm):
    tex = _shaded_texture(sfm, _light((0.3, 0.3, 1.0)))
    tex[:, : R // 2] = 0  # the photo shows only half of the face
    cue = shading_cue(tex, sfm)
    assert bool((cue[:, :, : R // 2] == 0).all()) and bool((cue[:, :, R // 2:] != 0).any())
    assert bool((shading_cue(np.zeros((R, R, 3), np.uint8), sfm) == 0).all())
    with pytest.raises(ValueError, match="square UV texture"):
        shading_cue(np.zeros((R, R // 2, 3), np.uint8), sfm)


def test_a_v_checkpoint_widened_to_the_cue_predicts_as_before_until_the_cue_weights_move(tmp_path, astronaut):
    """End to end through ``DetailPredictor``: the V weights (``dfdn_lite_v``, the default until 2026-12-06)
    widened to ``v_cue`` (the cue's weights at 0) give the shipped map on a real texture, so the widened run starts
    where the shipped network is; once the cue's weights move, the map moves: the cue reaches the network through
    inference's own path."""
    from omegaconf import OmegaConf
    from PIL import Image

    from fds.detail import DetailPredictor
    from fds.models.architecture import DFDNSpec
    from fds.models.checkpoint import load_start_weights, read_detail_checkpoint, save_detail_checkpoint

    shipped = "checkpoints/dfdn_lite_v.safetensors"  # the V-input round the cue lineage starts from
    _, meta = read_detail_checkpoint(shipped)
    cue_cfg = OmegaConf.merge(meta.architecture.to_config(),
                              {"generator": {"model": {"pdim": {"in_channels": 3}, "pdrm": {"in_channels": 4}}},
                               "discriminator": {"model": {"in_channels": 4}}})
    module = DFDNSpec.parse(OmegaConf.to_container(cue_cfg), "model").build().eval()
    load_start_weights(module, shipped)
    path = save_detail_checkpoint(tmp_path / "cue.safetensors", module.state_dict(), cue_cfg,
                                  map_resolution=meta.map_resolution, channels="v_cue", face_model=meta.face_model)
    texture = np.asarray(Image.fromarray(astronaut).resize((meta.map_resolution,) * 2))
    cue_pred = DetailPredictor.from_checkpoint(path, batch_size=16)
    assert cue_pred.meta.channels == "v_cue"
    base = DetailPredictor.from_checkpoint(shipped, batch_size=16).full_map(texture).displacement_mm
    same = cue_pred.full_map(texture).displacement_mm
    np.testing.assert_allclose(same, base, atol=1e-5 * np.abs(base).max())
    with torch.no_grad():  # give the cue channels of PDIM's first conv some weight
        w = cue_pred.module.generator.models["shared"].pdim.down[0][0].weight
        w[:, 1:] = 0.5 * w[:, :1]
    cue_pred = cue_pred.with_module(cue_pred.module, path)
    moved = cue_pred.full_map(texture).displacement_mm
    assert np.abs(moved - base).max() > 100 * 1e-5 * np.abs(base).max()  # far beyond the float noise allowed above


def test_a_mirrored_training_patch_carries_the_mirrored_cue(sfm):
    """Training mirrors half its patches: texture, GT and cue go together, the cue by :func:`mirror_cue`, which is
    what inference computes for a mirrored texture (test above)."""
    from fds.data.scans import _geometry_item

    tex = torch.from_numpy(_shaded_texture(sfm, _light((-1.0, 0.5, 0.8)))).permute(2, 0, 1).contiguous()
    cue = shading_cue(tex.permute(1, 2, 0).numpy(), sfm)
    disp = torch.randn(1, R, R)
    mask = torch.ones(1, R, R, dtype=torch.bool)
    top, left, p = 64, 32, 64
    args = (tex, disp, mask, top, left, p, "v_cue", 2.0)
    plain, mirrored = _geometry_item(*args, False, extra=cue), _geometry_item(*args, True, extra=cue)
    assert plain["input"].shape == (3, p, p)
    window = cue[:, top:top + p, left:left + p]
    torch.testing.assert_close(plain["input"][1:], window)
    torch.testing.assert_close(mirrored["input"][1:], mirror_cue(window))
    torch.testing.assert_close(mirrored["input"][:1], plain["input"][:1].flip(-1))
    torch.testing.assert_close(mirrored["displacement"], plain["displacement"].flip(-1))
    with pytest.raises(ValueError, match="rot90"):
        _geometry_item(*args, False, 1, extra=cue)
