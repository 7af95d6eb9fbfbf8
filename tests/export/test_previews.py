"""Previews: the detailed render shows relief where the displacement is non-zero and matches the proxy
render elsewhere; the strip has the four panels."""

from __future__ import annotations

import numpy as np
import pytest

from fds.export.bake import bake_displacement
from fds.export.maps import encode_normal_map, read_png
from fds.export.mesh_io import MeshData
from fds.export.previews import (
    frontal_view,
    pose_view,
    preview_strip,
    render_detailed,
    render_proxy,
    write_preview,
)

SIZE = 192


@pytest.fixture(scope="module")
def scene(sfm):
    proxy = MeshData(sfm.mean_mm, sfm.triangles, sfm.uv, sfm.uv_triangles)
    r = 256
    rows, cols = np.mgrid[0:r, 0:r]
    wrinkles = np.zeros((r, r), np.float32)
    box = (rows > 0.12 * r) & (rows < 0.3 * r) & (cols > 0.3 * r) & (cols < 0.7 * r)  # forehead band
    wrinkles[box] = 0.8 * np.sin(2 * np.pi * rows[box] / 10.0)  # horizontal furrows, 0.8 mm
    baked = bake_displacement(proxy, wrinkles, levels=2)
    view = frontal_view(proxy.vertices, SIZE)
    return proxy, baked, view, render_proxy(proxy, view), render_detailed(baked, view)


def project(view, points: np.ndarray) -> np.ndarray:
    cam = points @ view.rotation.T
    return np.stack([view.scale * cam[:, 0] + view.tx_px, view.height - (view.scale * cam[:, 1] + view.ty_px)], 1)


def test_detailed_differs_only_where_displaced(scene):
    proxy, baked, view, proxy_img, detail_img = scene
    assert proxy_img.shape == detail_img.shape == (SIZE, SIZE, 3)
    diff = np.abs(proxy_img.astype(int) - detail_img.astype(int))[..., 0]
    # pixels near displaced vertices (the projected forehead band, widened by a few pixels)
    moved = np.abs(baked.displacement_mm) > 1e-4
    xy = np.round(project(view, baked.base_vertices[moved])).astype(int)
    near = np.zeros((SIZE, SIZE), bool)
    for dy in range(-3, 4):
        for dx in range(-3, 4):
            x, y = np.clip(xy[:, 0] + dx, 0, SIZE - 1), np.clip(xy[:, 1] + dy, 0, SIZE - 1)
            near[y, x] = True
    assert near.mean() > 0.02  # the band is visible in the frontal view
    assert diff[near].mean() > 8  # relief shows
    assert np.percentile(diff[near], 90) > 25
    far = ~near
    assert (diff[far] <= 3).mean() > 0.995  # elsewhere the two renders agree
    assert np.median(diff[far]) == 0


def test_lighting_and_background(scene):
    proxy, _, view, proxy_img, _ = scene
    assert (proxy_img[0, 0] == 255).all()  # white background
    face = proxy_img[..., 0] < 255
    assert 0.3 < face.mean() < 0.95 and proxy_img[..., 0][face].std() > 10  # shaded, not flat


def test_pose_view_matches_frontal_for_identity_pose(scene):
    proxy, _, view, proxy_img, _ = scene

    class Pose:  # eos ScaledOrthoProjectionParameters: translation in model units
        R = np.eye(3)
        s = view.scale
        tx = view.tx_px / view.scale
        ty = view.ty_px / view.scale

    again = render_proxy(proxy, pose_view(Pose, SIZE, SIZE))
    assert np.array_equal(again, proxy_img)


def test_preview_strip(scene, tmp_path):
    _, _, _, proxy_img, detail_img = scene
    photo = np.zeros((300, 200, 3), np.uint8)
    nmap = encode_normal_map(np.dstack([np.zeros((64, 64, 2)), np.ones((64, 64))]))
    path = write_preview(tmp_path / "preview.png", photo, proxy_img, detail_img, nmap, height=128)
    strip = read_png(path)
    # 200×300 photo → 85 px wide at height 128; three square panels of 128; three 4-px gaps
    assert strip.shape == (128, 85 + 3 * 128 + 3 * 4, 3)
    assert (strip[:, 85:89] == 255).all()
    with pytest.raises(ValueError, match="at least one"):
        preview_strip([])
