"""Map encodings (16-bit displacement PNG + sidecar + NPY, 8-bit normal maps) and metric normal maps."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fds.export.maps import (
    decode_normal_map,
    encode_displacement,
    encode_normal_map,
    read_displacement,
    read_normal_map,
    read_png,
    write_displacement,
    write_normal_map,
    write_png,
)
from fds.export.normal_maps import normal_maps, vertex_texel_scale


def test_displacement_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    scale = 2.0
    d = rng.uniform(-scale, scale, (64, 48)).astype(np.float32)
    d[0, 0], d[0, 1], d[0, 2] = -scale, scale, 0.0
    cov = rng.random((64, 48)) > 0.3
    paths = write_displacement(tmp_path / "displacement.png", d, scale, coverage=cov, metadata={"model": "x"})
    assert {p.name for p in paths.values()} == {
        "displacement.png", "displacement.json", "displacement.npy", "displacement.exr", "displacement_coverage.png",
    }
    q = read_png(paths["png"])
    assert q.dtype == np.uint16 and q.shape == (64, 48)
    assert q[0, 0] == 0 and q[0, 1] == 65535 and q[0, 2] == 32768  # (d/scale + 1)/2 · 65535, rounded
    exact, meta = read_displacement(tmp_path / "displacement")
    np.testing.assert_array_equal(exact, d)
    decoded, _ = read_displacement(paths["json"], prefer="png")
    assert np.abs(decoded - d).max() <= scale / 65535 * 1.0001  # half a step of 2·scale/65535
    assert meta["scale_mm"] == scale and meta["resolution"] == [64, 48] and meta["model"] == "x"
    assert meta["units"] == "mm" and "row 0 = v 0" in meta["uv_convention"]
    np.testing.assert_array_equal(meta["coverage"], cov)
    side = json.loads(paths["json"].read_text())
    assert side["clipped_texels"] == 0 and side["files"]["png"] == "displacement.png"
    assert not list(tmp_path.glob(".*.part"))  # atomic writes leave no temp files


def test_displacement_exr_equals_npy_bit_for_bit(tmp_path):
    """The EXR, opened with the OpenEXR bindings as a DCC pipeline would, holds the .npy's float32 values."""
    import OpenEXR

    rng = np.random.default_rng(1)
    d = (rng.standard_normal((96, 80)) * 0.3).astype(np.float32)
    d[5, 7] = np.float32(1e-30)  # a denormal-ish tiny value and a value that half floats would round
    d[6, 7] = np.float32(0.1234567)
    write_displacement(tmp_path / "displacement", d, 2.0)
    with OpenEXR.File(str(tmp_path / "displacement.exr")) as f:
        channels = f.channels()
        assert list(channels) == ["Y"]
        pixels = channels["Y"].pixels
        assert f.header()["fds_units"].startswith("mm")
    npy = np.load(tmp_path / "displacement.npy")
    assert pixels.dtype == np.float32 and npy.dtype == np.float32
    np.testing.assert_array_equal(pixels.view(np.uint32), npy.view(np.uint32))  # same bits, not just close
    np.testing.assert_array_equal(npy, d)
    # exr only: no .npy; read_displacement falls back to the EXR, still exact
    write_displacement(tmp_path / "only", d, 2.0, float_format="exr")
    assert not (tmp_path / "only.npy").exists()
    back, meta = read_displacement(tmp_path / "only")
    np.testing.assert_array_equal(back, d)
    assert meta["files"] == {"png": "only.png", "exr": "only.exr"}
    write_displacement(tmp_path / "n", d, 2.0, float_format="npy")
    assert not (tmp_path / "n.exr").exists() and (tmp_path / "n.npy").exists()
    with pytest.raises(ValueError, match="float_format"):
        write_displacement(tmp_path / "x", d, 2.0, float_format="tiff")


def test_displacement_clipping_and_bad_input(tmp_path):
    q, clipped = encode_displacement(np.array([[3.0, -5.0, 0.5]]), 2.0)
    assert clipped == 2 and q[0, 0] == 65535 and q[0, 1] == 0
    with pytest.raises(ValueError, match="scale_mm"):
        encode_displacement(np.zeros((2, 2)), 0.0)
    with pytest.raises(ValueError, match="NaN"):
        encode_displacement(np.full((2, 2), np.nan), 1.0)
    with pytest.raises(FileNotFoundError, match="sidecar"):
        read_displacement(tmp_path / "missing.png")
    with pytest.raises(ValueError, match=r"\[H, W\]"):
        write_displacement(tmp_path / "d", np.zeros((2, 2, 2)), 1.0)


def test_rewrite_replaces_atomically(tmp_path):
    write_displacement(tmp_path / "d", np.zeros((8, 8), np.float32), 1.0)
    write_displacement(tmp_path / "d", np.full((8, 8), 0.25, np.float32), 1.0)
    d, meta = read_displacement(tmp_path / "d.png", prefer="png")
    assert np.abs(d - 0.25).max() < 1e-4 and "coverage" not in meta


def test_normal_map_encoding(tmp_path):
    flat = np.zeros((4, 4, 3), np.float32)
    flat[..., 2] = 1
    q = encode_normal_map(flat)
    assert (q == np.array([128, 128, 255], np.uint8)).all()
    rng = np.random.default_rng(1)
    n = rng.normal(size=(16, 16, 3))
    n /= np.linalg.norm(n, axis=-1, keepdims=True)
    cov = np.ones((16, 16), bool)
    cov[:2] = False
    write_normal_map(tmp_path / "n_obj.png", n, "object", cov)
    back = read_normal_map(tmp_path / "n_obj.png", normalize=False)
    assert np.abs(back[2:] - n[2:]).max() <= 1 / 255 + 1e-6  # half a step of 2/255
    assert (read_png(tmp_path / "n_obj.png")[:2] == 128).all()  # zero vector outside coverage
    write_normal_map(tmp_path / "n_ts.png", n, "tangent", cov)
    assert (read_png(tmp_path / "n_ts.png")[:2] == np.array([128, 128, 255])).all()
    unit = decode_normal_map(encode_normal_map(n))
    np.testing.assert_allclose(np.linalg.norm(unit, axis=-1), 1.0, atol=1e-6)
    with pytest.raises(ValueError, match="space"):
        write_normal_map(tmp_path / "x.png", n, "world")
    with pytest.raises(TypeError, match="uint8"):
        write_png(tmp_path / "x.png", n)


def plane(lx: float, ly: float):
    """A flat lx × ly mm rectangle in the z = 0 plane facing +z, UV-mapped with v down = y up."""
    v = np.array([[0, 0, 0], [lx, 0, 0], [lx, ly, 0], [0, ly, 0]], np.float32)
    uv = np.array([[0, 1], [1, 1], [1, 0], [0, 0]], np.float32)
    tri = np.array([[0, 1, 2], [0, 2, 3]], np.int32)
    return v, tri, uv, tri


def test_normal_maps_are_metric_on_an_anisotropic_plane():
    r, lx, ly = 64, 100.0, 50.0
    v, tri, uv, uv_tri = plane(lx, ly)
    np.testing.assert_allclose(vertex_texel_scale(v, tri, uv, uv_tri), [[lx, ly]] * 4, rtol=1e-9)
    cols, rows = np.meshgrid(np.arange(r), np.arange(r))
    x_mm, y_mm = (cols + 0.5) / r * lx, (1 - (rows + 0.5) / r) * ly
    inner = (slice(4, -4), slice(4, -4))  # away from the replicated border of the Sobel filter
    for h, expected in ((0.2 * x_mm, [-0.2, 0.0, 1.0]), (-0.3 * y_mm, [0.0, 0.3, 1.0])):
        maps = normal_maps(h.astype(np.float32), v, tri, uv, uv_tri)
        e = np.asarray(expected) / np.linalg.norm(expected)
        np.testing.assert_allclose(maps.tangent[inner], np.broadcast_to(e, (r - 8, r - 8, 3)), atol=1e-4)
        # T = +x, B = +y, N = +z on this plane: object space equals tangent space
        np.testing.assert_allclose(maps.object[inner], maps.tangent[inner], atol=1e-4)
    np.testing.assert_allclose(maps.texel_mm[maps.coverage], np.broadcast_to([lx / r, ly / r], (r * r, 2)), rtol=1e-5)


def test_flat_displacement_gives_the_proxy_normals(sfm):
    r = 128
    maps = normal_maps(np.zeros((r, r), np.float32), sfm.mean_mm, sfm.triangles, sfm.uv, sfm.uv_triangles)
    cov = maps.coverage
    assert cov.mean() > 0.7
    assert (maps.tangent[cov] == np.array([0, 0, 1], np.float32)).all()
    np.testing.assert_allclose(np.linalg.norm(maps.object[cov], axis=-1), 1.0, atol=1e-5)
    # the middle of the face (nose bridge region) looks at the viewer (+z), the chart's rim does not
    assert maps.object[r // 2, r // 2, 2] > 0.8
    assert (maps.object[~cov] == 0).all()


def test_upsampled_frames_match_full_resolution(sfm):
    r = 128
    d = np.zeros((r, r), np.float32)
    full = normal_maps(d, sfm.mean_mm, sfm.triangles, sfm.uv, sfm.uv_triangles)
    up = normal_maps(d, sfm.mean_mm, sfm.triangles, sfm.uv, sfm.uv_triangles, work_resolution=64, band_rows=50)
    both = full.coverage & up.coverage
    assert (full.coverage ^ up.coverage).mean() < 0.02
    err = np.linalg.norm(full.object[both] - up.object[both], axis=-1)
    assert np.median(err) < 0.01 and np.percentile(err, 99) < 0.1


@pytest.mark.parametrize("resolution, work", [(256, 256), (512, 128)])
def test_fast_normal_maps_match_the_reference(sfm, resolution, work):
    """The fast path against :func:`normal_maps_reference` on a wrinkled displacement over the SFM chart.

    The same formulas evaluated in another order (and bilinear upsampling by ``F.interpolate`` instead of
    ``grid_sample``, the same weights): float32 rounding of unit vectors and mm sizes, a few ulps, ≤ 1e-5; the
    8-bit encodings then differ by at most one level (where a value sits within 1e-5 of a rounding boundary).
    """
    from fds.export.normal_maps import normal_maps_reference

    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:resolution, 0:resolution] / resolution
    d = (0.1 * np.sin(2 * np.pi * 23 * yy + 3 * xx) + 0.02 * rng.normal(size=xx.shape)).astype(np.float32)
    cov = np.ones_like(d, bool)
    cov[: resolution // 3, : resolution // 4] = False
    args = (d, sfm.mean_mm, sfm.triangles, sfm.uv, sfm.uv_triangles, cov, work)
    fast, ref = normal_maps(*args), normal_maps_reference(*args)
    np.testing.assert_array_equal(fast.coverage, ref.coverage)
    np.testing.assert_allclose(fast.tangent, ref.tangent, atol=1e-5)
    np.testing.assert_allclose(fast.texel_mm, ref.texel_mm, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(fast.object, ref.object, atol=1e-5)
    codes = np.abs(encode_normal_map(fast.object).astype(int) - encode_normal_map(ref.object).astype(int))
    assert codes.max() <= 1
