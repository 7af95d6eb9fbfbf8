"""Previews: the detailed render shows relief where the displacement is non-zero and matches the proxy
render elsewhere; the strip has the four panels."""

from __future__ import annotations

import numpy as np
import pytest

from fds.export.maps import encode_normal_map, read_png
from fds.export.previews import (
    frontal_view,
    pose_view,
    preview_strip,
    render_detailed,
    render_proxy,
    write_preview,
)
from fds.mesh.bake import bake_displacement
from fds.mesh.meshdata import MeshData

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


def test_object_normal_map_agrees_with_the_baked_geometry(sfm):
    """Cross-check of conventions (tangent frame, bitangent sign, metric slopes): the object-space normal map
    sampled at the baked vertices equals the normals of the displaced geometry."""
    from fds.export.normal_maps import normal_maps
    from fds.export.previews import detailed_normals
    from fds.mesh.bake import sample_map

    proxy = MeshData(sfm.mean_mm, sfm.triangles, sfm.uv, sfm.uv_triangles)
    r = 256
    rows, cols = np.mgrid[0:r, 0:r] + 0.5
    d = (1.5 * np.sin(2 * np.pi * 3 * cols / r) + 1.0 * np.cos(2 * np.pi * 2 * rows / r)).astype(np.float32)
    maps = normal_maps(d, proxy.vertices, proxy.triangles, proxy.uv, proxy.uv_triangles)
    baked = bake_displacement(proxy, d, levels=2)
    geo = detailed_normals(baked)
    uv = np.zeros((len(geo), 2), np.float32)
    uv[baked.mesh.triangles.reshape(-1)] = baked.mesh.uv[baked.mesh.uv_triangles.reshape(-1)]
    sampled = np.stack([sample_map(maps.object[..., k], uv) for k in range(3)], 1)
    inner = (uv.min(1) > 0.1) & (uv.max(1) < 0.9)
    # keep vertices whose 5×5 texel neighbourhood lies inside the chart
    ok = np.ones_like(maps.coverage)
    for dy in range(-2, 3):
        for dx in range(-2, 3):
            ok &= np.roll(maps.coverage, (dy, dx), axis=(0, 1))
    inner &= sample_map(ok.astype(np.float32), uv) > 0.999
    sampled /= np.linalg.norm(sampled, axis=1, keepdims=True)
    angle = np.degrees(np.arccos(np.clip((sampled[inner] * geo[inner]).sum(1), -1, 1)))
    tilt = np.degrees(np.arccos(np.clip((baked.normals[inner] * geo[inner]).sum(1), -1, 1)))
    assert np.median(tilt) > 4  # the displacement really tilts the normals
    assert np.median(angle) < 1.5 and np.percentile(angle, 95) < 4


def test_normal_mapped_render_matches_the_baked_mesh_render(scene):
    """The fast preview (the proxy shaded with the object normal map) against the reference (the baked mesh
    rendered): the same proxy panel, and on the relief the same shading up to the sampling of two different
    discretisations (the map at 256², the mesh at 2 splits), far below the relief's own contrast."""
    from fds.export.normal_maps import normal_maps
    from fds.export.previews import render_proxy_and_detail

    proxy, baked, view, proxy_img, detail_img = scene
    r = 256
    rows, cols = np.mgrid[0:r, 0:r]
    wrinkles = np.zeros((r, r), np.float32)
    box = (rows > 0.12 * r) & (rows < 0.3 * r) & (cols > 0.3 * r) & (cols < 0.7 * r)
    wrinkles[box] = 0.8 * np.sin(2 * np.pi * rows[box] / 10.0)
    maps = normal_maps(wrinkles, proxy.vertices, proxy.triangles, proxy.uv, proxy.uv_triangles)
    fast_proxy, fast_detail = render_proxy_and_detail(proxy, maps.object, view)
    np.testing.assert_array_equal(fast_proxy, proxy_img)
    relief = np.abs(detail_img.astype(int) - proxy_img.astype(int))[..., 0]
    err = np.abs(fast_detail.astype(int) - detail_img.astype(int))[..., 0]
    shown = relief > 8
    assert shown.mean() > 0.01
    assert np.corrcoef(fast_detail[..., 0][shown], detail_img[..., 0][shown])[0, 1] > 0.8
    assert np.median(err[shown]) < 0.3 * np.median(relief[shown])
    near = np.zeros_like(shown)  # the relief widened by 4 px; away from it both show the proxy
    face = np.asarray(proxy_img)[..., 0] < 255
    for dy in range(-4, 5):
        for dx in range(-4, 5):
            near |= np.roll(shown, (dy, dx), axis=(0, 1))
    assert (err[face & ~near] <= 3).mean() > 0.99
