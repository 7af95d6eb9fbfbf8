"""The face model refitted to a detailed head's surface points (fds.data.model_refit): heights over the exact
smooth surface are the baked displacement, and the refit from a photo-like start recovers that surface."""

from __future__ import annotations

import numpy as np
import pytest

from fds.data.model_refit import heights_over, refit_model
from fds.data.photo_scans import PhotoScanGenerator
from fds.data.raycast_gt import umeyama
from fds.mesh.bake import bake_displacement
from fds.mesh.meshdata import MeshData


@pytest.fixture(scope="module")
def head(tmp_path_factory):
    gen = PhotoScanGenerator("sfm", 256, 256, cache_dir=tmp_path_factory.mktemp("cache"))
    rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(11).spawn(4)]
    h = gen.heads.head(rngs[0], rngs[1])
    fm = gen.fm
    baked = bake_displacement(MeshData(h["vertices"], fm.triangles, fm.uv, fm.uv_triangles), h["displacement_mm"],
                              levels=2)
    pick = np.random.default_rng(0).choice(len(baked.mesh.vertices), 20_000, replace=False)
    return fm, h, baked.mesh.vertices[pick].astype(np.float64), baked.displacement_mm[pick].astype(np.float64)


def test_heights_over_the_smooth_mesh_are_the_baked_displacement(head) -> None:
    """Baked vertices are B(u) + d(u)·n̂(u) with B on a flat face-model triangle and n̂ its Phong normal;
    inverting that must return d. Tolerance 3 % of the relief's RMS: the fixed-point steps converge by a factor
    ≈ d·|∂n̂/∂u| ≈ 0.1 mm · 0.03 rad/mm per step, what is left is at triangle edges where the foot switches
    to a neighbouring triangle."""
    fm, h, x, d = head
    feet = heights_over(x, h["vertices"], fm.triangles)
    assert np.sqrt(np.mean((feet.height - d) ** 2)) <= 0.03 * np.sqrt(np.mean(d**2))
    on = feet.point + feet.height[:, None] * feet.normal  # the inversion reproduces the points
    assert np.median(np.linalg.norm(on - x, axis=1)) < 1e-4


def test_refit_from_a_photo_like_start_recovers_the_smooth_surface(head) -> None:
    """From the photo fit's kind of error (identity off by 0.5 σ per coefficient, scale 0.93, 3° turn), the
    refit must land on the true smooth surface up to what the relief itself pulls it by. The true surface is in
    the model's span and leaves exactly the relief d as residual, so a converged refit leaves at most that
    (first bound). Near the truth, point-to-plane least squares moves the surface by the projection of d (on
    the points it keeps) onto the model's span, and a projection is no longer than its vector: the heights over
    the refit differ from d by at most the kept points' relief RMS (second bound). The start is far off
    (negative control: its heights differ from d by more than the relief)."""
    fm, h, x, d = head
    rng = np.random.default_rng(1)
    a = np.deg2rad(3.0)
    rot = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    x_cam = 0.93 * x @ rot.T + [4.0, -3.0, -600.0]
    # the photo fit: the true identity plus noise (fm.vertices(id, expr) built the head; the fixture's head has
    # its coefficients in standard deviations)
    coef0 = np.concatenate([h["id_coeffs"] + rng.normal(0, 0.5, len(h["id_coeffs"])), np.asarray(h["expr"]) * 0.5])
    start = fm.vertices(coef0[: fm.num_identity].astype(np.float32), coef0[fm.num_identity :].astype(np.float32))
    pose0 = umeyama(start.astype(np.float64), 0.93 * h["vertices"].astype(np.float64) @ rot.T + [4.0, -3.0, -600.0])
    before = heights_over((x_cam - pose0[2]) @ pose0[1] / pose0[0], start, fm.triangles).height * pose0[0] / 0.93
    verts, (s, r, t), summary = refit_model(fm, x_cam, np.ones(len(x)), coef0, pose0)
    after = heights_over((x_cam - t) @ r / s, verts, fm.triangles).height * s / 0.93  # mm of the head
    keep = np.abs(after) <= max(4 * np.median(np.abs(after)), 0.05 / 0.93)  # refit_model's gross-outlier cut
    rms = {"d": np.sqrt(np.mean(d**2)), "d kept": np.sqrt(np.mean(d[keep] ** 2)),
           "after kept": np.sqrt(np.mean(after[keep] ** 2)), "after - d kept": np.sqrt(np.mean((after - d)[keep] ** 2)),
           "before - d": np.sqrt(np.mean((before - d) ** 2))}
    print(summary, {k: round(float(v), 4) for k, v in rms.items()})
    assert summary["rms_mm_refit"] <= 0.93 * rms["d"]
    assert rms["after - d kept"] <= rms["d kept"]
    assert rms["before - d"] > rms["d"]
