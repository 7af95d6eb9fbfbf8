"""Camera-ray hits on a rendered mesh (fds.data.surface_hits): the vectorised path returns exactly what the plain
loop over candidate slots returns, on a rendered head and on a mesh built so that rays tie between triangles."""

from __future__ import annotations

import numpy as np
import pytest

from fds.data.photo_scans import PhotoScanGenerator
from fds.data.surface_hits import camera_ray_hits, camera_ray_hits_reference, moller_trumbore
from fds.mesh.bake import BakedMesh
from fds.mesh.meshdata import MeshData
from fds.render import PinholeCamera

FIELDS = ("valid", "triangle", "bary", "uv", "point_cam")


def _same(a, b) -> None:
    for k in FIELDS:
        x, y = getattr(a, k), getattr(b, k)
        assert x.dtype == y.dtype and np.array_equal(x, y, equal_nan=True), k


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    gen = PhotoScanGenerator("sfm", 256, 256, cache_dir=tmp_path_factory.mktemp("cache"),
                             photo={"face_width_px": [300.0, 340.0], "yaw_deg": 40.0})
    return gen.render(5)[0]


@pytest.mark.slow
def test_fast_hits_equal_the_reference_loop_on_a_rendered_head(photo) -> None:
    rows, cols = np.nonzero(photo.face_mask)
    rng = np.random.default_rng(1)
    n = 20_000
    px = np.stack([rng.uniform(cols.min() - 3, cols.max() + 3, n), rng.uniform(rows.min() - 3, rows.max() + 3, n)],
                  1)
    px[: n // 4] = np.round(px[: n // 4])  # pixel centres (where rays meet shared edges most often)
    px[n // 4 : n // 4 + 50] = [[-5.0, -5.0]]  # outside the photo: no candidates
    fast = camera_ray_hits(photo.camera, photo.baked, photo.tri_id, px)
    ref = camera_ray_hits_reference(photo.camera, photo.baked, photo.tri_id, px)
    _same(fast, ref)
    assert 0.3 < fast.valid.mean() < 0.99 and not fast.valid[n // 4 : n // 4 + 50].any()
    # the hits are real: each point lies on its ray at the pixel it was asked for
    back = photo.camera.project(fast.point_cam[fast.valid])
    assert np.abs(back - px[fast.valid]).max() < 1e-6
    empty = camera_ray_hits(photo.camera, photo.baked, photo.tri_id, np.zeros((0, 2)))
    assert empty.valid.shape == (0,) and empty.point_cam.shape == (0, 3)


def test_ties_between_triangles_go_to_the_first_candidate_like_the_reference() -> None:
    """Two coplanar copies of a quad (the second wound the other way): every ray hits both at exactly the same
    distance, so only the candidate order decides; the fast path must pick what the sequential strict-< loop
    picks, whatever order the pixels list the triangles in."""
    quad = np.array([[-50, -50, 0], [50, -50, 0], [50, 50, 0], [-50, 50, 0]], np.float32)
    verts = np.concatenate([quad, quad])
    tri = np.array([[0, 1, 2], [0, 2, 3], [4, 6, 5], [4, 7, 6]], np.int32)
    uv = np.concatenate([quad[:, :2] / 100 + 0.5] * 2).astype(np.float32)
    baked = BakedMesh(MeshData(verts, tri, uv, tri.copy()), verts, np.tile([[0, 0, 1]], (8, 1)).astype(np.float32),
                      np.zeros(8, np.float32), 0)
    cam = PinholeCamera(200.0, 200.0, 15.5, 15.5, 32, 32, np.eye(3), np.array([0.0, 0.0, -500.0]))
    rng = np.random.default_rng(0)
    px = np.concatenate([rng.uniform(2, 29, (500, 2)), np.round(rng.uniform(2, 29, (100, 2)))])
    d, vc = cam.ray_directions(px), cam.to_camera(verts)
    t = np.stack([np.where(h, t, np.inf) for t, _, _, h in
                  (moller_trumbore(np.zeros((len(px), 3)), d, vc[tri[np.full(len(px), k)]]) for k in range(4))], 1)
    assert np.array_equal(np.minimum(t[:, 0], t[:, 1]), np.minimum(t[:, 2], t[:, 3]))  # exact ties everywhere
    winners = []
    for order in ([0, 1, 2, 3], [3, 2, 1, 0], [2, 0, 3, 1]):  # the triangle seen at each pixel, in stripes
        tri_id = np.asarray(order, np.int32)[(np.arange(32)[:, None] + np.arange(32)[None]) % 4]
        fast = camera_ray_hits(cam, baked, tri_id, px)
        _same(fast, camera_ray_hits_reference(cam, baked, tri_id, px))
        assert fast.valid.all()
        winners.append(fast.triangle >= 2)
    assert not np.array_equal(winners[0], winners[1])  # the order decided
