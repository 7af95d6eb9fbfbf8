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
from fds.export.bake import bake_displacement, sample_map
from fds.export.mesh_io import MeshData, write_obj
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


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="mesh-only scans: heights over the registered proxy keep its facets and "
                   "shape error finer than the 4 mm band (measured RMS 0.29 mm vs 0.05 mm relief); needs the scan's "
                   "own smooth surface (e.g. heat-smoothed) as the height reference")
def test_ray_cast_gt_of_an_ingested_obj_agrees_with_its_shared_uv_gt(tmp_path, head_obj) -> None:
    gen, head, baked, tmp = head_obj
    scan = load_scan(tmp / "head.obj", tmp / "head_albedo.png", "mm", resolution=R)
    written, skipped = ingest_scan(scan, gen, tmp_path, photos=2, seed=3)
    assert written, skipped
    folder = written[0]
    with np.load(folder / "maps.npz") as z:
        d, mask = z["displacement_mm"], z["mask"] > 0
    with np.load(folder / "gt_fitted.npz") as z:
        uv = z["gt_uv"]
    assert mask.sum() > 3000
    # shared-UV GT: the head's own map at the UV each texel shows, band-passed like the ray cast
    import json

    meta = json.loads((folder / "sample.json").read_text())
    du, dv = meta["texel_mm"]
    sig = (gen.band_sigma_mm / dv, gen.band_sigma_mm / du)
    disp = head["displacement_mm"]
    ref = np.zeros_like(d)
    ref[mask] = sample_map(disp, uv[mask])
    ref = np.where(mask, ref - masked_lowpass(ref, mask, sig), 0)
    # Tolerance, from the data and not from the result: the OBJ is the map sampled at its vertices and linear in
    # between, so the ray cast can only see that piecewise-linear surface; its deviation from the map (computed
    # here in the head's UV) bounds the disagreement, plus 10 % of the relief for measuring along the fitted
    # proxy normal instead of the scan's (1/cos 25° − 1) and for the registered proxy's residual tilt.
    rast = rasterize_uv(torch.from_numpy(baked.mesh.uv), torch.from_numpy(baked.mesh.uv_triangles.astype(np.int64)),
                        (R, R), backend="torch")
    lin = interpolate(torch.from_numpy(baked.displacement_mm)[:, None][_uv_vertex(baked)], rast,
                      torch.from_numpy(baked.mesh.uv_triangles.astype(np.int64)))[0, ..., 0].numpy()
    cov = rast[0, ..., 3].numpy() > 0
    interp_err = np.sqrt(np.mean((lin - disp)[cov] ** 2))
    rms_ref = np.sqrt(np.mean(ref[mask] ** 2))
    err = np.sqrt(np.mean((d[mask] - ref[mask]) ** 2))
    print(f"ray-cast vs shared-UV GT: RMS {err:.4f} mm (relief RMS {rms_ref:.4f}, interpolation bound "
          f"{interp_err:.4f}), r = {np.corrcoef(d[mask], ref[mask])[0, 1]:.3f}")
    assert err <= interp_err + 0.1 * rms_ref
    assert np.corrcoef(d[mask], ref[mask])[0, 1] > 0.9


def _uv_vertex(baked) -> torch.Tensor:
    out = torch.zeros(len(baked.mesh.uv), dtype=torch.int64)
    out[torch.from_numpy(baked.mesh.uv_triangles.astype(np.int64)).reshape(-1)] = torch.from_numpy(
        baked.mesh.triangles.astype(np.int64)).reshape(-1)
    return out
