"""Photo-level samples: render → real proxy stage → GT ray-cast into the fitted UV (fds.data.photo_scans)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fds.data.photo_render import jpeg_roundtrip
from fds.data.photo_scans import PhotoScanGenerator, SkippedPhoto, write_photo_samples
from fds.data.raycast_gt import masked_lowpass, umeyama
from fds.data.sample_io import list_samples, read_sample
from fds.mesh.bake import sample_map

R = 256
SMALL = {"face_width_px": [220.0, 260.0], "yaw_deg": 25.0, "pitch_deg": 10.0, "roll_deg": 5.0}


@pytest.fixture(scope="module")
def gen(tmp_path_factory) -> PhotoScanGenerator:
    # palette albedo and the libraries' scenes: no albedo bank to build, no wild photos to scan for faces
    return PhotoScanGenerator("sfm", R, R, cache_dir=tmp_path_factory.mktemp("cache"), photo=SMALL)


@pytest.fixture(scope="module")
def sample(gen):
    for seed in range(3, 10):
        try:
            return gen.generate(seed)
        except SkippedPhoto:
            continue
    pytest.fail("no photo of seeds 3..9 got a proxy")


def test_umeyama_recovers_a_similarity_and_lowpass_keeps_constants() -> None:
    rng = np.random.default_rng(0)
    src = rng.normal(size=(200, 3)) * 50
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    q *= np.sign(np.linalg.det(q))
    dst = 1.3 * src @ q.T + [5, -2, 40]
    s, rot, t = umeyama(src, dst)
    assert s == pytest.approx(1.3, abs=1e-9) and np.allclose(rot, q, atol=1e-9) and np.allclose(t, [5, -2, 40])
    mask = np.zeros((64, 64), bool)
    mask[10:50, 5:40] = True
    low = masked_lowpass(np.full((64, 64), 2.5), mask, (4.0, 4.0))
    assert np.allclose(low[mask], 2.5) and np.all(low[~mask] == 0)


@pytest.mark.slow
def test_ray_cast_gt_shows_what_the_texel_shows(sample, gen) -> None:
    """Each GT texel describes the GT surface point seen at the photo pixel the unwrap sampled: that point
    projects back onto the texel's pixel, and the GT equals the head's own (shared-UV) displacement there,
    band-passed, up to the 1/cos factor of measuring along the fitted normal."""
    from fds.data.raycast_gt import proxy_maps
    from fds.proxy.fit import project_px

    s, photo, proxy, gt = sample.scan, sample.photo, sample.proxy, sample.gt
    m = s.mask
    assert m.sum() > 0.2 * (s.visibility > 0).sum()
    # (1) pixel consistency: the GT point seen at the texel projects to the texel's pixel (exact ray hits)
    fit = proxy.fit
    pos, _, _ = proxy_maps(gen.fm, fit.vertices_mm, R)
    px = project_px(pos[m], fit.rotation, fit.translation_mm, fit.scale_px_per_mm, fit.image_size)
    hits = photo.surface_at(px)
    back = photo.camera.project(hits.point_cam[hits.valid].astype(np.float64))
    assert np.abs(back - px[hits.valid]).max() < 1e-3
    # (2) the GT is the head's displacement at the seen UV, band-passed the same way
    head_disp = gen.render(sample.meta["seed"])[1]["displacement_mm"]
    d_ref = np.zeros((R, R))
    d_ref[m] = sample_map(head_disp, np.nan_to_num(hits.uv)) * hits.valid
    du, dv = gt.texel_mm
    sig = (gen.band_sigma_mm / dv, gen.band_sigma_mm / du)
    ref = np.where(m, d_ref - masked_lowpass(d_ref, m, sig), 0)
    got = s.displacement_mm
    # 1/cos ≤ 1/0.3 in principle; the fitted and GT normals agree within ~25° on most texels, so the relative
    # RMS difference is bounded by 1/cos(25°) − 1 = 0.10 (+ the uv interpolation of the mesh's surface)
    diff = np.sqrt(np.mean((got[m] - ref[m]) ** 2)) / np.sqrt(np.mean(ref[m] ** 2))
    assert diff < 0.15, diff
    r = np.corrcoef(got[m], ref[m])[0, 1]
    assert r > 0.97
    mirrored = np.where(m, ref[:, ::-1], 0)  # negative control: the left-right mirrored GT
    both = m & m[:, ::-1]
    assert abs(np.corrcoef(got[both], mirrored[both])[0, 1]) < 0.3


@pytest.mark.slow
def test_same_seed_same_sample(sample, gen) -> None:
    again = gen.generate(sample.meta["seed"])
    assert np.array_equal(again.photo.image, sample.photo.image)
    assert np.array_equal(again.scan.texture, sample.scan.texture)
    assert np.array_equal(again.scan.displacement_mm, sample.scan.displacement_mm)


@pytest.mark.slow
@pytest.mark.parametrize("workers", [0, 1])
def test_undetectable_photos_are_skipped_counted_and_not_written(tmp_path, gen, workers) -> None:
    """Also through a spawned worker process (``--workers N``): the loader and the generator must pickle."""
    tiny = PhotoScanGenerator("sfm", R, R, cache_dir=gen.backgrounds.cache_dir,
                              photo={**SMALL, "face_width_px": [24.0, 30.0]})  # below min_face_px = 40
    if workers == 0:
        with pytest.raises(SkippedPhoto, match="seed 1"):
            tiny.generate(1)
    report = write_photo_samples(tmp_path, [1, 2], tiny, workers=workers)
    assert report.written == [] and [s for s, _ in report.skipped] == [1, 2] and report.skip_rate == 1.0
    assert list_samples(tmp_path) == []
    assert [p.name for p in tmp_path.iterdir()] == ["skipped.json"]  # no half-written sample folder
    assert set(json.loads((tmp_path / "skipped.json").read_text())) == {"1", "2"}


@pytest.mark.slow
def test_written_sample_reads_as_a_scan_sample(tmp_path, sample) -> None:
    from fds.data.photo_scans import write_photo_sample

    folder = write_photo_sample(tmp_path / "photo_000001", sample)
    s = read_sample(folder)
    assert s.texture.shape == (R, R, 3) and np.array_equal(s.mask, sample.scan.mask)
    assert s.meta["source"] == "photo" and "camera" in s.meta["photo"] and s.meta["photo"]["lights"]
    with np.load(folder / "photo_gt.npz") as z:
        h, w = sample.photo.image.shape[:2]
        assert z["normal_detail"].shape == (h, w, 3) and z["region"].shape == (h, w)
        assert set(np.unique(z["region"])) >= {0, 1, 5}  # background, forehead, cheeks
    assert (folder / "photo.png").is_file() and (folder / "proxy" / "face0.npz").is_file()


@pytest.mark.slow
def test_sample_does_not_depend_on_the_callers_thread_count(sample, gen) -> None:
    """Generation runs with ``gen.threads`` (1) torch threads whatever the caller set, so workers = 0 (the main
    process's threads) and workers > 0 (1 thread each) write the same sample; the caller's setting comes back."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(2 if before == 1 else 1)
    try:
        again = gen.generate(sample.meta["seed"])
        assert torch.get_num_threads() == (2 if before == 1 else 1)
    finally:
        torch.set_num_threads(before)
    assert np.array_equal(again.scan.texture, sample.scan.texture)
    assert np.array_equal(again.scan.displacement_mm, sample.scan.displacement_mm)
    assert np.array_equal(again.proxy.fit.vertices_mm, sample.proxy.fit.vertices_mm)


def test_marks_coverage_is_the_blend_factor_of_the_painted_marks(gen) -> None:
    """Painting two albedos with the same draws differs by (A1 − A2)·(1 − coverage): the coverage is where, and how
    much, the marks hide the skin, whatever its colour; the caller's random stream is not advanced."""
    from fds.data.face_marks import marks_coverage, paint_face_marks

    chart = gen.heads.chart
    noise = np.random.default_rng(1)
    a1, a2 = (noise.uniform(0.2, 0.9, (R, R, 3)).astype(np.float32) for _ in range(2))
    for seed in (0, 5):
        rng = np.random.default_rng(seed)
        cov, info = marks_coverage(rng, chart)
        assert rng.random() == np.random.default_rng(seed).random()
        p1, info1 = paint_face_marks(np.random.default_rng(seed), a1, chart)
        p2, _ = paint_face_marks(np.random.default_rng(seed), a2, chart)
        assert info == info1
        np.testing.assert_allclose(p1 - p2, (a1 - a2) * (1 - cov[..., None]), atol=1e-5)
        assert 0.002 < (cov > 0.5).mean() < 0.2  # eyes, brows, lip line at least; never most of the face


@pytest.mark.slow
def test_flat_line_maps_follow_the_sample_into_its_folder_and_replay_for_old_ones(tmp_path, sample, gen) -> None:
    from fds.data.photo_scans import (
        add_flat_line_maps,
        add_flat_line_maps_to_folder,
        fitted_from_photo,
        write_photo_sample,
    )

    marks, edges = sample.scan.marks, sample.scan.shadow_edges
    assert marks is not None and marks.shape == (R, R) and marks.min() >= 0 and marks.max() <= 1
    assert not marks[~sample.scan.mask].any() and marks[sample.scan.mask].max() > 0.5
    assert edges is not None and edges.shape == (R, R) and not edges[~sample.scan.mask].any()
    # photo maps reach the UV through the pixel each texel's colour came from: the photo's own red channel
    # comes back as the unwrap's (both bilinear at the same points; 8-bit rounding on each side ≤ 0.5 levels)
    red = fitted_from_photo(sample.photo.image[..., 0].astype(np.float32), sample.proxy, gen.fm, R)
    seen = sample.scan.visibility > 0  # texels the unwrap took from the photo
    assert np.abs(red[seen] - sample.scan.texture[..., 0][seen]).mean() <= 1.0
    folder = write_photo_sample(tmp_path / f"photo_{sample.meta['seed']:06d}", sample)
    back = read_sample(folder)
    assert np.abs(back.marks - marks).max() <= 0.5 / 255 + 1e-6
    assert np.abs(back.shadow_edges - edges).max() <= 0.5 / 255 + 1e-6
    np.testing.assert_array_equal(back.flat_lines(), np.maximum(back.marks, back.shadow_edges))
    # a sample written before the maps existed gets the same maps back from its seed and stored photo GT
    (folder / "marks.png").unlink()
    (folder / "shadow_edges.png").unlink()
    assert add_flat_line_maps(folder, gen) == "marks+shadow_edges" and add_flat_line_maps(folder, gen) == "present"
    again = read_sample(folder)
    np.testing.assert_array_equal(again.marks, back.marks)
    assert np.abs(again.shadow_edges - back.shadow_edges).max() <= 1 / 255  # float16 shadow map on disk
    # a sample.json whose marks another generator drew is refused, naming the folder, and nothing is written
    (folder / "marks.png").unlink()
    meta = json.loads((folder / "sample.json").read_text())
    meta["head"]["marks"]["brow_density"] += 0.1
    (folder / "sample.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=folder.name):
        add_flat_line_maps(folder, gen)
    assert not (folder / "marks.png").exists()
    outcome = add_flat_line_maps_to_folder(tmp_path, gen)
    assert list(outcome) == [next(k for k in outcome if k.startswith("failed"))]  # reported, not raised


@pytest.mark.slow
def test_a_hard_side_light_leaves_shadow_edges_in_the_fitted_uv(sample, gen) -> None:
    """Under the benchmark's hard side light the nose casts a shadow: its edge reaches the UV as a thin line
    (at least one photo pixel's worth of texels per edge pixel seen, never a large area)."""
    from fds.data.photo_render import cast_shadow_edges
    from fds.evaluation_photo_level import LIGHTINGS

    hard = gen.generate(sample.meta["seed"], lights=LIGHTINGS["hard_side"])
    in_photo = cast_shadow_edges(hard.photo.shadow) & (hard.photo.face_mask > 0)
    edges = hard.scan.shadow_edges > 0.5
    assert in_photo.sum() > 20 and edges.sum() > 20
    assert edges.sum() < 0.1 * hard.scan.mask.sum()


@pytest.mark.slow
def test_the_generator_script_renders_faces_of_the_widths_asked(tmp_path) -> None:
    """``datasets/generate_photo_scans.py --face-width-px MIN MAX`` draws every face's width in the photo from that
    range (how the small-face samples of docs/bench_photo_level.md were made), and the default range otherwise."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "datasets" / "generate_photo_scans.py"
    common = ["--seeds", "3", "5", "--resolution", "128", "--gt-resolution", "128", "--albedo-dir", "none",
              "--background-dir", "none", "--cache-dir", str(tmp_path / "cache")]
    for out, widths in (("small", (100.0, 110.0)), ("default", None)):
        extra = [] if widths is None else ["--face-width-px", *map(str, widths)]
        proc = subprocess.run([sys.executable, str(script), "--out", str(tmp_path / out), *common, *extra],
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-2000:]
        folders = list_samples(tmp_path / out)
        got = [json.loads((f / "sample.json").read_text())["photo"]["face_width_px"] for f in folders]
        assert got, proc.stdout[-2000:]
        low, high = widths or (150.0, 1000.0)  # fds.data.photo_render.PhotoConfig's default
        assert all(low <= w <= high for w in got), got


def test_a_lossless_photo_skips_jpeg_and_keeps_every_other_draw(gen) -> None:
    import copy
    import dataclasses

    seed = 3
    taken, _ = gen.render(seed)
    png = copy.copy(gen)  # the module's generator is shared: change a copy's camera only
    png.photo_config = dataclasses.replace(gen.photo_config, lossless_fraction=1.0)
    kept, _ = png.render(seed)
    fx, kept_fx = dict(taken.params["camera_effects"]), dict(kept.params["camera_effects"])
    assert isinstance(fx.pop("jpeg_quality"), int) and kept_fx.pop("jpeg_quality") is None and kept_fx == fx
    a, b = (json.dumps({k: v for k, v in p.params.items() if k != "camera_effects"}, sort_keys=True, default=str)
            for p in (taken, kept))
    assert a == b
    assert np.array_equal(taken.face_mask, kept.face_mask)
    # the photo differs from the JPEG one only by the JPEG: compressing it at the drawn quality gives that photo
    assert not np.array_equal(taken.image, kept.image)
    quality = taken.params["camera_effects"]["jpeg_quality"]
    assert np.array_equal(jpeg_roundtrip(kept.image, quality), taken.image)
    with pytest.raises(ValueError, match="lossless_fraction"):
        dataclasses.replace(gen.photo_config, lossless_fraction=1.5)


def test_a_perfect_camera_changes_the_pixels_and_nothing_else(gen) -> None:
    import copy
    import dataclasses

    seed = 3
    taken, _ = gen.render(seed)
    perfect = copy.copy(gen)  # the module's generator is shared: change a copy's camera only
    perfect.photo_config = dataclasses.replace(gen.photo_config, camera_effects=False)
    clean, _ = perfect.render(seed)
    fx, clean_fx = taken.params["camera_effects"], dict(clean.params["camera_effects"])
    # the same effects are drawn, so every later draw (and the sample's record of them) is unchanged; only a flag
    # says they were not applied
    assert clean_fx.pop("applied") is False and "applied" not in fx and clean_fx == fx
    a, b = (json.dumps({k: v for k, v in p.params.items() if k != "camera_effects"}, sort_keys=True, default=str)
            for p in (taken, clean))
    assert a == b
    for name in ("normal_detail", "normal_smooth", "face_mask", "region", "landmarks_px", "shadow", "marks"):
        assert np.array_equal(getattr(taken, name), getattr(clean, name), equal_nan=True), name
    assert taken.image.shape == clean.image.shape and not np.array_equal(taken.image, clean.image)


def test_skin_pigment_changes_the_skins_colour_and_nothing_else(gen) -> None:
    import copy

    seed = 3
    plain, head = gen.render(seed)
    pigmented = copy.copy(gen)  # the module's generator is shared: turn the option on in a copy
    pigmented.skin_pigment = True
    spotted, head_p = pigmented.render(seed)
    # its own random stream: the head, the marks and the photo's draws are those of the seed without it
    assert np.array_equal(head["displacement_mm"], head_p["displacement_mm"])
    assert np.array_equal(head["marks_coverage"], head_p["marks_coverage"])
    a, b = (json.dumps(p.params, sort_keys=True, default=str) for p in (plain, spotted))
    assert a == b
    for name in ("normal_detail", "normal_smooth", "face_mask", "shadow"):
        assert np.array_equal(getattr(plain, name), getattr(spotted, name), equal_nan=True), name
    assert set(head_p["marks"]["pigment"]) == {"mottle_rms", "redness_rms", "freckles"}
    assert "pigment" not in head["marks"]
    # colour only, on the skin only: the albedo changes inside the chart and nowhere else
    covered = head["covered"]
    alb, alb_p = (h["albedo"][0].permute(1, 2, 0).numpy() for h in (head, head_p))
    assert np.array_equal(alb[~covered], alb_p[~covered])
    # marks painted over the pigment cover it where they are opaque: compare the skin away from them
    skin = covered & (head["marks_coverage"] < 0.01) & (alb.min(-1) > 0.02) & (alb_p.max(-1) < 0.99)
    log_ratio = np.log(alb_p[skin] / alb[skin])  # [N, 3] = −density · per-channel weight
    rms = np.sqrt(np.mean(log_ratio**2, axis=0))
    # melanin and haemoglobin both darken blue more than red, so the blue channel varies most
    assert rms[0] < rms[2]
    # the mottle alone is drawn at 1–5 % RMS (blue weight 1); without the option both albedos are equal (0 here)
    assert rms[2] >= 0.009
    assert not np.array_equal(plain.image, spotted.image)
