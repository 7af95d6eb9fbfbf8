"""Photo renders average the UV maps over each pixel's footprint (``PhotoConfig.texture_filter="mipmap"``), as
a camera pixel integrates what it sees: a small face's pixel then carries the mean normal of the skin it covers,
not one point of its pores (which aliased into pixel noise in the shading and in the GT normals)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy.ndimage import binary_erosion, gaussian_filter

from fds.data.photo_scans import PhotoScanGenerator
from fds.threads import torch_threads

R = 1024  # the maps' real density: a 150 px face spans ~7 texels per pixel
POSE = {"yaw_deg": 20.0, "pitch_deg": 10.0, "roll_deg": 5.0}


def _detail_normals(gen: PhotoScanGenerator, width_px: float, texture_filter: str, seed: int) -> np.ndarray:
    gen.photo_config = dataclasses.replace(gen.photo_config, face_width_px=(width_px, width_px),
                                           texture_filter=texture_filter)
    photo, _ = gen.render(seed)
    assert photo.params["texture_filter"] == texture_filter
    return photo.normal_detail, photo.face_mask


@pytest.mark.slow  # four 1024² heads rendered (~1 min on one core)
def test_a_small_face_reads_as_the_large_one_averaged_over_its_pixels(tmp_path) -> None:
    gen = PhotoScanGenerator("sfm", R, R, cache_dir=tmp_path / "cache", photo={**POSE})
    seed, k = 4, 4  # the same draws at 150 px and 600 px wide: one photo, the second k× finer
    with torch_threads(1):
        fine, fine_mask = _detail_normals(gen, 600.0, "mipmap", seed)
        small = {f: _detail_normals(gen, 150.0, f, seed) for f in ("point", "mipmap")}
    h, w = (min(a, b // k) for a, b in zip(small["mipmap"][0].shape[:2], fine.shape[:2], strict=True))
    # the fine photo averaged over each small pixel's k × k block: what a camera's small pixel integrates
    seen = fine[:k * h, :k * w].reshape(h, k, w, k, 3).mean((1, 3))
    ok = binary_erosion(small["mipmap"][1][:h, :w], iterations=3) & \
        fine_mask[:k * h, :k * w].reshape(h, k, w, k).all((1, 3))
    assert ok.sum() > 5000

    def band(n: np.ndarray) -> np.ndarray:  # the detail a few pixels wide (σ = 2 px high-pass), x and y components
        return np.stack([n[:h, :w, c] - gaussian_filter(n[:h, :w, c], 2.0) for c in range(2)], -1)[ok].ravel()

    want = band(seen)
    rms = {f: band(n).std() / want.std() for f, (n, _) in small.items()}
    r = {f: np.corrcoef(band(n), want)[0, 1] for f, (n, _) in small.items()}
    # a pixel that averages its footprint keeps no more fine relief than the averaged fine photo (the mip's box is
    # a little wider than the footprint); one point sample per pixel keeps the pores' full variance on top of it
    assert rms["mipmap"] <= 1.0 < rms["point"]
    assert r["mipmap"] > r["point"]


def test_an_unknown_texture_filter_is_refused_by_name() -> None:
    from fds.data.photo_render import PhotoConfig

    with pytest.raises(ValueError, match="texture_filter.*'box'"):
        PhotoConfig(texture_filter="box")
