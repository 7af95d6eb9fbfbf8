"""ProxyStage caching and the folder runner on real photos plus bad input."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from fds.proxy.stage import ProxyResult, ProxyStage, run_folder

CFG = {"unwrap": {"resolution": 128, "backend": "torch"}, "expression": {"mode": "init", "source": "geometry"}}


@pytest.mark.slow  # 45-75 s on a loaded 2-core CPU
def test_stage_caches_by_content_and_config(tmp_path, labelled_dir):
    src = labelled_dir / "lfpw_image_0002.png"
    img = tmp_path / "a.png"
    shutil.copy(src, img)
    stage = ProxyStage(CFG, cache_dir=tmp_path / "cache")
    (first,) = stage(img)
    assert first.uv.texture.shape == (128, 128, 3) and first.landmarks_px.shape == (68, 2)
    folders = [p for p in (tmp_path / "cache").iterdir() if not p.name.startswith(".")]
    assert len(folders) == 1 and (folders[0] / "done.json").is_file()
    (again,) = stage(img)  # from the cache
    np.testing.assert_array_equal(again.fit.vertices_mm, first.fit.vertices_mm)
    np.testing.assert_array_equal(again.uv.texture, first.uv.texture)
    np.testing.assert_array_equal(again.uv.confidence, first.uv.confidence)  # full precision
    assert again.fit.yaw_pitch_roll_deg == first.fit.yaw_pitch_roll_deg
    shutil.copy(src, tmp_path / "b.png")  # same content, other name: same key
    stage(tmp_path / "b.png")
    assert len([p for p in (tmp_path / "cache").iterdir() if not p.name.startswith(".")]) == 1
    other = ProxyStage({**CFG, "fit": {"num_iterations": 2}}, cache_dir=tmp_path / "cache")
    other(img)  # another config: another entry
    assert len([p for p in (tmp_path / "cache").iterdir() if not p.name.startswith(".")]) == 2
    assert isinstance(ProxyResult.load(folders[0]), ProxyResult)


def test_folder_runner_records_bad_input_and_goes_on(tmp_path, labelled_dir):
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(labelled_dir / "lfpw_image_0001.png", photos / "good.png")
    (photos / "notes.jpg").write_text("not an image")
    data = (labelled_dir / "helen_1599258772_1.jpg").read_bytes()
    (photos / "truncated.jpg").write_bytes(data[: len(data) // 3])
    from PIL import Image

    Image.fromarray(np.full((120, 160, 3), 90, np.uint8)).save(photos / "wall.png")  # no face
    summary = run_folder(photos, tmp_path / "cache", CFG, num_workers=0, progress=False)
    assert summary.num_images == 4 and not summary.ok
    assert [p.split("/")[-1] for p, _ in summary.succeeded] == ["good.png"]
    reasons = {p.split("/")[-1]: r for p, r in summary.failed}
    assert set(reasons) == {"notes.jpg", "truncated.jpg", "wall.png"}
    assert "ImageReadError" in reasons["notes.jpg"] and "notes.jpg" in reasons["notes.jpg"]
    assert "ImageReadError" in reasons["truncated.jpg"]
    assert "NoFaceError" in reasons["wall.png"]
    assert (tmp_path / "cache" / "summary.json").is_file()
    # nothing half-written: only complete entries and the summary
    entries = [p for p in (tmp_path / "cache").iterdir() if p.is_dir()]
    assert len(entries) == 1 and all((e / "done.json").is_file() for e in entries)


def test_cli_exit_status(tmp_path, labelled_dir):
    import importlib.util
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "datasets" / "preprocess_proxy.py"
    spec = importlib.util.spec_from_file_location("preprocess_proxy", script)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    photos = tmp_path / "p"
    photos.mkdir()
    shutil.copy(labelled_dir / "takeo.png", photos / "takeo.png")
    args = [
        str(photos),
        "--cache",
        str(tmp_path / "c"),
        "--no-progress",
        "unwrap.resolution=64",
        "unwrap.backend=torch",
        "expression.source=geometry",
    ]
    assert mod.main(args) == 0
    (photos / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    assert mod.main(args) == 1


@pytest.mark.slow
def test_two_workers_match_serial(tmp_path, labelled_dir):
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("lfpw_image_0001.png", "lfpw_image_0002.png", "takeo.png"):
        shutil.copy(labelled_dir / name, photos / name)
    s0 = run_folder(photos, tmp_path / "c0", CFG, num_workers=0, progress=False)
    s2 = run_folder(photos, tmp_path / "c2", CFG, num_workers=2, progress=False)
    assert s0.ok and s2.ok
    for (_, a), (_, b) in zip(s0.succeeded, s2.succeeded, strict=True):
        np.testing.assert_allclose(ProxyResult.load(a).fit.vertices_mm, ProxyResult.load(b).fit.vertices_mm, atol=1e-4)
