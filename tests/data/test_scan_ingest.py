"""Scan ingestion (fds.data.scan_ingest): a synthetic head exported as an OBJ with its relief baked in goes
through the photo path, and its ray-cast GT agrees with the head's own (shared-UV) displacement."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from fds.data.photo_scans import PhotoScanGenerator
from fds.data.raycast_gt import masked_lowpass
from fds.data.scan_ingest import ScanInputError, ingest_scan, load_scan
from fds.export.mesh_io import write_obj
from fds.mesh.bake import bake_displacement, sample_map
from fds.mesh.meshdata import MeshData
from fds.render import interpolate, rasterize_uv

R = 256


@pytest.fixture(scope="module")
def head_obj(tmp_path_factory):
    """Seed-11 head: OBJ of the displaced mesh (3 subdivisions), its albedo PNG and its displacement map."""
    gen = PhotoScanGenerator("sfm", R, R, photo={"face_width_px": [230.0, 260.0], "yaw_deg": 20.0})
    rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(11).spawn(4)]
    head = gen.heads.head(rngs[0], rngs[1])
    fm = gen.fm
    baked = bake_displacement(MeshData(head["vertices"], fm.triangles, fm.uv, fm.uv_triangles),
                              head["displacement_mm"], levels=3)
    tmp = tmp_path_factory.mktemp("scan")
    write_obj(tmp / "head.obj", baked.mesh)
    albedo = (head["albedo"][0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    Image.fromarray(albedo).save(tmp / "head_albedo.png")
    return gen, head, baked, tmp


@pytest.mark.slow  # 45-75 s on a loaded 2-core CPU
def test_bad_scans_get_clear_errors(tmp_path, head_obj) -> None:
    _, _, baked, tmp = head_obj
    with pytest.raises(ScanInputError, match="unknown units"):
        load_scan(tmp / "head.obj", tmp / "head_albedo.png", None)
    with pytest.raises(ScanInputError, match="unknown units 'inch'"):
        load_scan(tmp / "head.obj", tmp / "head_albedo.png", "inch")
    write_obj(tmp_path / "no_uv.obj", MeshData(baked.mesh.vertices, baked.mesh.triangles))
    with pytest.raises(ScanInputError, match="no_uv.obj: the mesh has no UV"):
        load_scan(tmp_path / "no_uv.obj", tmp / "head_albedo.png", "mm")


@pytest.mark.slow
def test_ingested_obj_with_a_displacement_map_agrees_with_its_shared_uv_gt(tmp_path, head_obj) -> None:
    """Smooth OBJ + its displacement map (.npy, mm): heights are measured from the scan's own smooth surface,
    so the ray-cast GT equals the shared-UV GT up to measuring along the fitted proxy normal instead of the
    scan's: a factor 1/cos ≤ 1/cos 25° = 1.10 on the texels where the normals agree that well (most), i.e. a
    relative RMS difference ≤ 0.10 + the band-pass of that difference (≤ 0.05)."""
    gen, head, _, tmp = head_obj
    fm = gen.fm
    write_obj(tmp_path / "smooth.obj", MeshData(head["vertices"], fm.triangles, fm.uv, fm.uv_triangles))
    np.save(tmp_path / "smooth_disp.npy", head["displacement_mm"])
    scan = load_scan(tmp_path / "smooth.obj", tmp / "head_albedo.png", "mm", tmp_path / "smooth_disp.npy",
                     resolution=R)
    written, skipped = ingest_scan(scan, gen, tmp_path / "out", photos=2, seed=3)
    assert written, skipped
    d, mask, ref = _ray_cast_and_reference(written[0], gen, head["displacement_mm"])
    rms_ref = np.sqrt(np.mean(ref[mask] ** 2))
    err = np.sqrt(np.mean((d[mask] - ref[mask]) ** 2))
    print(f"ray-cast vs shared-UV GT (displacement map): RMS {err:.4f} mm, relief RMS {rms_ref:.4f} mm")
    assert err <= 0.15 * rms_ref
    assert np.corrcoef(d[mask], ref[mask])[0, 1] > 0.97


@pytest.mark.slow
def test_ingested_obj_with_a_normal_map_agrees_with_its_integrated_heights(tmp_path, head_obj) -> None:
    """Smooth OBJ + an 8-bit tangent-space normal map of the head's relief: the map is integrated to heights
    (``integrate_normal_map``) and from there on it is a displacement-map scan, so the ray-cast GT must equal the
    integrated heights' shared-UV GT within the displacement-map test's bound (0.15 of the relief RMS: the
    1/cos of measuring along the fitted normal and its band-pass). What the normal map carries of the true relief
    is ``test_a_normal_map_integrates_back_to_its_heights``'s business."""
    from fds.data.scan_ingest import scan_head
    from fds.render import normals_from_displacement

    gen, head, _, tmp = head_obj
    fm = gen.fm
    write_obj(tmp_path / "smooth.obj", MeshData(head["vertices"], fm.triangles, fm.uv, fm.uv_triangles))
    n = normals_from_displacement(torch.from_numpy(head["displacement_mm"])[None, None], head["texel_mm"])[0]
    png = np.round((n.permute(1, 2, 0).numpy() * 0.5 + 0.5) * 255).astype(np.uint8)
    Image.fromarray(png).save(tmp_path / "smooth_normal.png")
    scan = load_scan(tmp_path / "smooth.obj", tmp / "head_albedo.png", "mm", normal_map_path=tmp_path /
                     "smooth_normal.png", resolution=R)
    integrated = scan_head(scan, R)
    assert integrated["detail_source"] == "normal map (integrated)"
    written, skipped = ingest_scan(scan, gen, tmp_path / "out", photos=2, seed=3)
    assert written, skipped
    d, mask, ref = _ray_cast_and_reference(written[0], gen, integrated["displacement_mm"])
    rms_ref = np.sqrt(np.mean(ref[mask] ** 2))
    err = np.sqrt(np.mean((d[mask] - ref[mask]) ** 2))
    print(f"ray-cast vs integrated normal map GT: RMS {err:.4f} mm, relief RMS {rms_ref:.4f} mm")
    assert err <= 0.15 * rms_ref
    assert np.corrcoef(d[mask], ref[mask])[0, 1] > 0.97


def _ray_cast_and_reference(folder, gen, disp):
    import json

    with np.load(folder / "maps.npz") as z:
        d, mask = z["displacement_mm"], z["mask"] > 0
    with np.load(folder / "gt_fitted.npz") as z:
        uv = z["gt_uv"]
    assert mask.sum() > 3000
    meta = json.loads((folder / "sample.json").read_text())
    du, dv = meta["texel_mm"]
    ref = np.zeros_like(d)
    ref[mask] = sample_map(disp, uv[mask])
    ref = np.where(mask, ref - masked_lowpass(ref, mask, (gen.band_sigma_mm / dv, gen.band_sigma_mm / du)), 0)
    return d, mask, ref


@pytest.mark.slow  # ≈ 60 s: one proxy fit per photo, then the refit
def test_ray_cast_gt_of_an_ingested_obj_agrees_with_its_shared_uv_gt(tmp_path, head_obj) -> None:
    """A mesh-only scan (the relief baked into the OBJ, no map): its smooth reference is the face model refitted
    to the scan (fds.data.model_refit); the GT must match the head's own displacement as far as the OBJ carries it.

    Tolerance (argued, its parts computed from the data): the head's smooth surface is a face-model mesh, so it
    lies in the refit's span and a converged refit coincides with it up to shape the 4 mm band-pass removes; what
    is left is (a) the OBJ: the map sampled at its vertices and linear in between, so the ray cast sees that
    piecewise-linear surface; its RMS deviation from the map (in the head's UV) bounds this part; (b) 10 % of
    the relief for measuring along the fitted proxy normal instead of the scan's (1/cos 25° − 1) and the
    refit's residual tilt, as the displacement-map test. An RMS error e against a zero-mean reference of RMS ρ
    leaves a correlation of at least √(1 − (e/ρ)²), so the bound also fixes the lowest acceptable r."""
    import json

    gen, head, baked, tmp = head_obj
    scan = load_scan(tmp / "head.obj", tmp / "head_albedo.png", "mm", resolution=R)
    written, skipped = ingest_scan(scan, gen, tmp_path, photos=2, seed=3)
    assert written, skipped
    d, mask, ref = _ray_cast_and_reference(written[0], gen, head["displacement_mm"])
    meta = json.loads((written[0] / "sample.json").read_text())
    with np.load(written[0] / "gt_fitted.npz") as z:
        uv = z["gt_uv"]
    rast = rasterize_uv(torch.from_numpy(baked.mesh.uv), torch.from_numpy(baked.mesh.uv_triangles.astype(np.int64)),
                        (R, R), backend="torch")
    lin = interpolate(torch.from_numpy(baked.displacement_mm)[:, None][_uv_vertex(baked)], rast,
                      torch.from_numpy(baked.mesh.uv_triangles.astype(np.int64)))[0, ..., 0].numpy()
    cov = rast[0, ..., 3].numpy() > 0
    interp_err = np.sqrt(np.mean((lin - head["displacement_mm"])[cov] ** 2))
    rms_ref = np.sqrt(np.mean(ref[mask] ** 2))
    bound = interp_err + 0.1 * rms_ref
    err = np.sqrt(np.mean((d[mask] - ref[mask]) ** 2))
    r = np.corrcoef(d[mask], ref[mask])[0, 1]
    print(f"mesh-only ray-cast vs shared-UV GT: RMS {err:.4f} mm (bound {bound:.4f}: relief RMS {rms_ref:.4f}, "
          f"interpolation {interp_err:.4f}), r = {r:.3f} (bound {np.sqrt(1 - (bound / rms_ref) ** 2):.3f}); "
          f"refit {meta['gt']['refit']}")
    assert err <= bound
    assert r >= np.sqrt(1 - (bound / rms_ref) ** 2)
    # the refit itself: the true smooth surface leaves exactly the relief at the fitted points, so a refit that
    # found it (or better, by absorbing the relief's low frequencies) leaves no more than the unbanded relief
    relief = sample_map(head["displacement_mm"], uv[mask])
    assert meta["detail_source"].startswith("mesh")
    assert meta["gt"]["refit"]["rms_mm_refit"] <= np.sqrt(np.mean(relief**2)) < meta["gt"]["refit"]["rms_mm_start"]


def _uv_vertex(baked) -> torch.Tensor:
    out = torch.zeros(len(baked.mesh.uv), dtype=torch.int64)
    out[torch.from_numpy(baked.mesh.uv_triangles.astype(np.int64)).reshape(-1)] = torch.from_numpy(
        baked.mesh.triangles.astype(np.int64)).reshape(-1)
    return out


def test_a_normal_map_integrates_back_to_its_heights() -> None:
    """Grooves and a bump (Gaussian profiles of σ = 4–8 texels) on a disc-shaped chart, turned into a
    tangent-space normal map (``normals_from_displacement``, metric texels) and integrated back: the heights
    return with their signs, up to a constant (the integration fixes only slopes). Tolerance 5 % RMS: the Sobel
    derivative of a Gaussian of σ texels is low by ≈ 5/(12σ²) ≈ 2.6 % at its main frequency for σ = 4."""
    from fds.data.scan_ingest import integrate_normal_map
    from fds.render import normals_from_displacement

    r = 160
    rows, cols = np.mgrid[0:r, 0:r].astype(np.float64)
    chart = (rows - 80) ** 2 + (cols - 80) ** 2 < 75**2
    h = (0.3 * np.exp(-((rows - 60) ** 2) / (2 * 4.0**2)) * (np.abs(cols - 80) < 40)  # a bump along a row
         - 0.2 * np.exp(-((cols - 55) ** 2) / (2 * 6.0**2)) * (np.abs(rows - 95) < 30)  # a groove down a column
         - 0.15 * np.exp(-((rows - 100) ** 2 + (cols - 105) ** 2) / (2 * 8.0**2)))  # a dimple
    from scipy import ndimage

    h = ndimage.gaussian_filter(h, 1.0)  # soften the profiles' ends
    texel = (0.3, 0.25)
    n = normals_from_displacement(torch.from_numpy(h.astype(np.float32))[None, None], texel)[0].permute(1, 2, 0)
    got = integrate_normal_map(n.numpy(), chart, texel)
    inner = ndimage.binary_erosion(chart, iterations=3)
    diff = got[inner] - h[inner]
    diff -= diff.mean()
    assert np.sqrt(np.mean(diff**2)) < 0.05 * np.sqrt(np.mean((h[inner] - h[inner].mean()) ** 2))
    assert np.corrcoef(got[inner], h[inner])[0, 1] > 0.99
