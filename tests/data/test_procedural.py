"""Procedural scans: placement, age/expression dependence, depth statistics, determinism, SH recovery."""

import numpy as np
import pytest
import torch

from fds.data.procedural import ProceduralScanGenerator
from fds.data.wrinkles import (
    ACTIVATIONS,
    DEPTH_MM,
    Wrinkle,
    cheek_creases,
    micro_relief,
    render_wrinkles,
    wrinkle_layout,
)
from fds.facemodel import region_masks
from fds.facemodel.uvchart import uv_chart
from fds.render import estimate_sh

R = 256


def _forehead_disp(fm, seed: int, age: float, brow_raise: float = 0.0) -> tuple[np.ndarray, list[Wrinkle]]:
    chart = uv_chart(fm, R)
    act = dict.fromkeys(ACTIVATIONS, 0.0)
    act["brow_raise"] = brow_raise
    top = float(np.nanpercentile(chart.frame_xy[..., 1][region_masks(fm, R)["forehead"]], 98))
    wr = [w for w in wrinkle_layout(np.random.default_rng(seed), age, act, chart.landmarks_frame, top)
          if w.kind == "forehead"]
    pos = chart.interpolate(fm.mean_mm)
    return render_wrinkles(wr, chart.frame_xy, pos, chart.covered, chart.frame_unit_mm), wr


def test_forehead_lines_fall_inside_the_forehead_mask(fm):
    disp, wr = _forehead_disp(fm, seed=3, age=0.9)
    assert len(wr) >= 3
    grooves = disp < -0.05
    assert grooves.sum() > 50
    forehead = region_masks(fm, R)["forehead"]
    assert (grooves & forehead).sum() / grooves.sum() > 0.9


def test_forehead_lines_deepen_with_age_and_raised_brows(fm):
    young = [_forehead_disp(fm, s, age=0.15)[0] for s in range(4)]
    old = [_forehead_disp(fm, s, age=0.95)[0] for s in range(4)]
    raised = [_forehead_disp(fm, s, age=0.15, brow_raise=1.0)[0] for s in range(4)]
    depth = [np.mean([-d.min() for d in group]) for group in (young, old, raised)]
    assert depth[1] > 1.5 * depth[0] + 0.05
    assert depth[2] > 1.5 * depth[0] + 0.05
    # the deepest furrow stays inside the documented furrow range
    lo, hi = DEPTH_MM["forehead"]
    assert max(-d.min() for d in old) <= hi * 1.15


def test_crows_feet_deepen_with_smiling(fm):
    chart = uv_chart(fm, R)
    rest, smile = dict.fromkeys(ACTIVATIONS, 0.0), dict.fromkeys(ACTIVATIONS, 0.0)
    smile["smile"] = 1.0

    def depth(act):
        out = []
        for s in range(4):
            wr = wrinkle_layout(np.random.default_rng(s), 0.3, act, chart.landmarks_frame, 1.0)
            out += [w.depth_mm for w in wr if w.kind == "crows_feet"]
        return np.mean(out) if out else 0.0

    assert depth(smile) > 1.5 * depth(rest)


def test_cheek_creases_lie_on_the_cheeks_of_older_faces_only(fm):
    chart = uv_chart(fm, R)
    rest = dict.fromkeys(ACTIVATIONS, 0.0)
    pos = chart.interpolate(fm.mean_mm)
    cheeks = region_masks(fm, R)["cheeks"]
    young = [cheek_creases(np.random.default_rng(s), 0.2, rest, chart.landmarks_frame) for s in range(6)]
    assert not any(young)  # a young face at rest has none
    for s in range(3):
        wr = cheek_creases(np.random.default_rng(s), 0.95, rest, chart.landmarks_frame)
        assert len(wr) >= 6 and {w.kind for w in wr} == {"cheek"}
        # on both sides of the face, beside the nasolabial folds (|x| beyond the nose wings at 0.19 eye distances)
        xs = np.concatenate([w.curve[:, 0] for w in wr])
        assert (xs < -0.19).mean() > 0.3 and (xs > 0.19).mean() > 0.3
        grooves = render_wrinkles(wr, chart.frame_xy, pos, chart.covered, chart.frame_unit_mm) < -0.05
        assert grooves.sum() > 100
        assert (grooves & cheeks).sum() / grooves.sum() > 0.7
        assert all(DEPTH_MM["cheek"][0] * 0.85 <= w.depth_mm <= DEPTH_MM["cheek"][1] for w in wr)


def test_the_cheek_creases_option_leaves_every_other_draw_of_a_seed_alone():
    kw = dict(resolution=128, age_range=(0.8, 1.0))
    off, on = ProceduralScanGenerator(**kw), ProceduralScanGenerator(**kw, cheek_creases=True)

    def streams(seed):
        return [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3)][:2]

    a, b = off.head(*streams(5)), on.head(*streams(5))
    assert [w.as_dict() for w in a["wrinkles"]] == [w.as_dict() for w in b["wrinkles"] if w.kind != "cheek"]
    assert sum(w.kind == "cheek" for w in b["wrinkles"]) > 0
    np.testing.assert_array_equal(a["albedo"], b["albedo"])  # the albedo stream is untouched too
    changed = a["displacement_mm"] != b["displacement_mm"]
    assert 0 < changed.mean() < 0.2  # only the creases' texels moved: pores and other wrinkles are the same draws
    # and the creases are the same on every call
    np.testing.assert_array_equal(b["displacement_mm"], on.head(*streams(5))["displacement_mm"])


def test_micro_relief_statistics():
    rng = np.random.default_rng(0)
    valid = np.ones((128, 128), bool)
    d = micro_relief(rng, valid, np.full((128, 128), 0.5, np.float32), texel_mm=0.1, age=0.5)
    assert 0.004 < d.std() < 0.05  # tens of micrometres
    assert -0.2 < d.min() and d.max() < 0.1


@pytest.fixture(scope="module")
def gen():
    return ProceduralScanGenerator(resolution=R, age_range=(0.5, 1.0))


def test_same_seed_same_sample(gen):
    a, b, c = gen.generate(11), gen.generate(11), gen.generate(12)
    assert np.array_equal(a.texture, b.texture)
    assert np.array_equal(a.displacement_mm, b.displacement_mm)
    assert a.meta == b.meta
    assert not np.array_equal(a.displacement_mm, c.displacement_mm)


def test_wrinkles_only_head_is_the_same_head_without_its_pores(gen):
    """micro_relief_scale=0 keeps every draw (identity, expression, wrinkles, albedo): the two heads differ by the
    pore relief alone, which is the micro-relief of the same draws (its statistics, test above)."""
    plain = ProceduralScanGenerator(resolution=R, age_range=(0.5, 1.0), micro_relief_scale=0.0)
    a = gen.head(np.random.default_rng(3), np.random.default_rng(4))
    b = plain.head(np.random.default_rng(3), np.random.default_rng(4))
    assert np.array_equal(a["vertices"], b["vertices"])
    assert [w.as_dict() for w in a["wrinkles"]] == [w.as_dict() for w in b["wrinkles"]]
    assert torch.equal(a["albedo"], b["albedo"])
    pores = (a["displacement_mm"] - b["displacement_mm"])[a["covered"]]
    assert 0.004 < pores.std() < 0.05 and pores.max() < 0.1
    # wrinkles and folds cover a minority of the face: without pores most skin is flat to 10 µm; with them
    # (std ≥ 0.02 mm at these ages) at most about half of it can be
    flat_without = float((np.abs(b["displacement_mm"][a["covered"]]) < 0.01).mean())
    flat_with = float((np.abs(a["displacement_mm"][a["covered"]]) < 0.01).mean())
    assert flat_without > 0.8 and flat_with < 0.5
    assert (b["displacement_mm"][a["covered"]] < -0.1).any()  # the wrinkles are there


def test_sample_contents(gen):
    s = gen.generate(5)
    assert s.texture.shape == (R, R, 3) and s.texture.dtype == np.uint8
    assert s.displacement_mm.dtype == np.float32
    assert (s.displacement_mm[~s.mask] == 0).all()
    assert -2.3 < s.displacement_mm.min() < -0.1  # wrinkles present, none deeper than the documented folds
    assert s.displacement_mm.max() < 1.5
    n = np.linalg.norm(s.normal[s.mask], axis=-1)
    assert np.allclose(n, 1, atol=1e-3)
    assert s.normal[..., 2][s.mask].mean() > 0.5  # outward, towards the viewer
    assert 0.1 < s.visibility[s.mask].mean() <= 1


def test_sh_reestimated_from_rendered_texture_recovers_lighting():
    g = ProceduralScanGenerator(resolution=R, degrade_strength=0.0)
    s, internals = g.generate_with_internals(7)
    sh_true = torch.tensor(s.meta["sh"])
    tex = torch.from_numpy(s.texture).permute(2, 0, 1)[None].float() / 255
    # the reflectance the texture was rendered with: float albedo times the cavity occlusion (the 8-bit
    # s.albedo alone biases the ill-conditioned higher bands by ~5%: its rounding is not in the texture)
    reflectance = internals["albedo"].float() * internals["occlusion"]
    mask = torch.from_numpy((s.visibility > 0.5) & s.mask)[None, None].float()
    mask = mask * (internals["shading"].min(1, keepdim=True).values > 0) * (tex.max(1, keepdim=True).values < 0.99)
    est = estimate_sh(tex, internals["normal_detail"], mask, reflectance)[0]
    rel = (est - sh_true).norm() / sh_true.norm()
    assert rel < 0.05, (est, sh_true)


def test_cavity_occlusion_darkens_the_grooves_of_a_real_sample():
    g_ao = ProceduralScanGenerator(resolution=R, degrade_strength=0.0, age_range=(0.8, 1.0))
    s, internals = g_ao.generate_with_internals(5)
    assert s.meta["occlusion"] == {"strength": 1.0, "radius_mm": 1.5}
    occ = internals["occlusion"][0, 0].numpy()
    grooves = (s.displacement_mm < -0.1) & s.mask
    assert grooves.sum() > 20
    assert occ[grooves].mean() < 0.97 and occ[~s.mask].min() == 1.0
    plain, plain_int = ProceduralScanGenerator(resolution=R, degrade_strength=0.0, age_range=(0.8, 1.0),
                                               occlusion_strength=0.0).generate_with_internals(5)
    assert np.array_equal(plain.displacement_mm, s.displacement_mm)   # occlusion only changes the appearance
    assert torch.all(plain_int["occlusion"] == 1)
    assert (s.texture.astype(int).sum(-1)[grooves] < plain.texture.astype(int).sum(-1)[grooves]).mean() > 0.8
