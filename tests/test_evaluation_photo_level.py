"""Photo-level benchmark driver (fds.evaluation_photo_level): flat-line masks, summaries, report tables."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fds.evaluation_image import PHOTO_LABELS
from fds.evaluation_photo_level import flat_lines, line_scope, summarise_photo_level
from fds.reports import photo_level_tables


def test_flat_lines_are_marks_and_hard_shadow_edges_outside_the_mouth():
    h, w = 40, 40
    region = np.full((h, w), PHOTO_LABELS.index("cheeks") + 1, np.uint8)
    region[30:, :] = PHOTO_LABELS.index("mouth") + 1
    marks = np.zeros((h, w), np.float32)
    marks[5, 5:15] = 0.3  # a drawn hair
    marks[8, 5:15] = 0.05  # a faint tint, not a line
    marks[33, 5:15] = 0.3  # the lip line, inside the mouth
    shadow = np.ones((h, w), np.float32)
    shadow[:, 25:] = 0.0  # a hard cast-shadow edge between columns 24 and 25
    soft = np.ones((h, w), np.float32) * np.clip((np.arange(w) - 10) / 20.0, 0, 1)[None]  # a 20 px penumbra
    gt = {"region": region, "marks": marks, "shadow": shadow}
    lines = flat_lines(gt, line_scope(gt))
    assert lines[5, 5:15].all() and not lines[8, :20].any() and not lines[33, :20].any()
    assert lines[15, 24] and lines[15, 25] and not lines[15, 20] and not lines[15, 30]
    assert not flat_lines({**gt, "marks": np.zeros_like(marks), "shadow": soft}, line_scope(gt)).any()


def _row(photo: str, lighting: str, r: float, deg: float, zero: float) -> dict:
    s = {"all": {"detail_r": r, "amplitude_ratio": 0.5, "normal_deg": deg, "normal_deg_zero": zero, "pixels": 10},
         "forehead": {"detail_r": r + 0.1, "amplitude_ratio": 0.6, "normal_deg": deg, "normal_deg_zero": zero,
                      "pixels": 4}}
    z = {k: {**v, "detail_r": math.nan, "amplitude_ratio": 0.0, "normal_deg": zero} for k, v in s.items()}
    return {"photo": photo, "seed": 1, "lighting": lighting, "scores": {"dfdn": s, "zero": z},
            "line_relief": {"dfdn": 0.8, "zero": math.nan}, "line_pixels": 3, "scored_pixels": 10}


def test_summary_averages_photos_per_lighting_and_region():
    rows = [{**_row("a", "soft_front", 0.4, 1.0, 1.2), "face_width_px": 412.7}, _row("b", "hard_side", 0.6, 1.3, 1.2)]
    s = summarise_photo_level(rows)
    assert s["photos"] == 2
    assert s["overall"]["dfdn"]["detail_r"] == pytest.approx(0.5)
    assert s["by_lighting"]["hard_side"]["dfdn"]["detail_r"] == pytest.approx(0.6)
    assert s["by_region"]["forehead"]["dfdn"]["detail_r"] == pytest.approx(0.6)
    assert math.isnan(s["overall"]["zero"]["detail_r"])  # undefined for no detail, never a number
    assert s["below_zero_every_photo"]["dfdn"] is False  # photo b: 1.3° vs 1.2° without detail
    assert s["line_relief"]["dfdn"] == pytest.approx(0.8) and math.isnan(s["line_relief"]["zero"])
    text = "\n".join(photo_level_tables({"rows": rows, "summary": s, "skipped": ["photo_x: no face"]}))
    assert "| DFDN (checkpoint) | 0.500 | 0.500 |" in text and "hard_side" in text and "skipped photo_x" in text
    assert "| a | soft_front | 413 | 1.200 |" in text and "| b | hard_side | – | 1.200 |" in text  # face width, px
    assert summarise_photo_level([])["photos"] == 0


def _rows(per_head: dict[int, list[dict[str, float]]]) -> list[dict]:
    """Score rows: per head seed, one dict of {method: r} per photo (amplitude and normal follow from r)."""
    return [{"photo": f"{seed}_{i}", "seed": seed, "lighting": "soft_front", "line_relief": {}, "line_pixels": 0,
             "scores": {m: {"all": {"detail_r": r, "amplitude_ratio": 2 * r, "normal_deg": 1 - r,
                                    "normal_deg_zero": 1.0}} for m, r in photo.items()}}
            for seed, photos in per_head.items() for i, photo in enumerate(photos)]


def test_head_intervals_resample_heads_not_photos():
    from fds.evaluation_photo_level import head_intervals

    # identical heads: no uncertainty; a constant offset between methods: the paired difference is exactly it
    same = head_intervals(_rows({s: [{"a": 0.4, "b": 0.3}] * 3 for s in (1, 2, 3)}))
    assert same["heads"] == 3 and same["baseline"] == "a"
    assert same["interval"]["a"]["detail_r"] == pytest.approx([0.4, 0.4])
    assert same["paired"]["b"]["detail_r"] == pytest.approx([-0.1, -0.1, -0.1])
    assert same["paired"]["b"]["amplitude_ratio"] == pytest.approx([-0.2, -0.2, -0.2])
    # head 1 has three photos at r 1, head 2 one at r 0: the mean over photos is 0.75, and a resample draws both
    # heads (0.75), head 1 twice (1) or head 2 twice (0) — each 1/4 of the time, so the 95 % interval is [0, 1];
    # resampling photos instead would give a narrower one
    lop = head_intervals(_rows({1: [{"a": 1.0}] * 3, 2: [{"a": 0.0}]}), resamples=4000)
    assert lop["interval"]["a"]["detail_r"] == pytest.approx([0.0, 1.0])
    # the paired difference of two methods that move together with the head stays narrow
    rows = _rows({1: [{"a": 0.2, "b": 0.25}], 2: [{"a": 0.6, "b": 0.65}], 3: [{"a": 0.4, "b": 0.45}]})
    both = head_intervals(rows)
    lo, hi = both["interval"]["b"]["detail_r"]
    assert hi - lo > 0.2 and both["paired"]["b"]["detail_r"] == pytest.approx([0.05, 0.05, 0.05])
    assert head_intervals([])["heads"] == 0


def test_report_shows_head_intervals():
    rows = _rows({1: [{"dfdn": 0.3, "zero": 0.0}], 2: [{"dfdn": 0.5, "zero": 0.0}]})
    lines = photo_level_tables({"rows": rows, "summary": summarise_photo_level(rows), "skipped": []})
    text = "\n".join(lines)
    assert "intervals over the 2 heads" in text and "[0.300, 0.500]" in text and "-0.400 [-0.500, -0.300]" in text


def test_held_out_photos_rendered_with_another_texture_filter_are_rendered_again(tmp_path):
    import json
    from types import SimpleNamespace

    from fds.data.photo_render import PhotoConfig
    from fds.data.photo_scans import SkippedPhoto
    from fds.evaluation_photo_level import write_held_out_photos

    asked: list[int] = []

    def generate(seed, lights=None):  # every render fails: which photos were asked for is what counts here
        asked.append(seed)
        raise SkippedPhoto(f"seed {seed}: no face found")

    gen = SimpleNamespace(photo_config=PhotoConfig(), generate=generate)
    for seed, photo in ((1, {"texture_filter": "mipmap"}), (2, {})):  # seed 2: rendered before the option
        folder = tmp_path / f"photo_{seed:06d}_soft"
        folder.mkdir()
        (folder / "sample.json").write_text(json.dumps({"photo": photo}))
    (tmp_path / "skipped.json").write_text(json.dumps({"photo_000003_soft": "skipped when point-sampled"}))
    folders, skipped = write_held_out_photos(tmp_path, gen, [1, 2, 3], {"soft": []})
    assert [f.name for f in folders] == ["photo_000001_soft"] and asked == [2, 3]
    assert (tmp_path / "photo_000002_soft" / "sample.json").is_file()  # the old render stays until a new one lands
    # skips are remembered under the filter they were found with: a second pass asks for nothing
    assert len(skipped) == 2 and write_held_out_photos(tmp_path, gen, [1, 2, 3], {"soft": []})[0] == folders
    assert asked == [2, 3]


def test_held_out_photos_from_another_camera_are_rendered_again(tmp_path):
    import json
    from types import SimpleNamespace

    from fds.data.photo_render import PhotoConfig
    from fds.data.photo_scans import SkippedPhoto
    from fds.evaluation_photo_level import write_held_out_photos

    asked: list[int] = []

    def generate(seed, lights=None):
        asked.append(seed)
        raise SkippedPhoto(f"seed {seed}: no face found")

    camera = {"texture_filter": "mipmap", "camera_effects": {"blur_sigma_px": 0.5}}
    perfect = {"texture_filter": "mipmap", "camera_effects": {"blur_sigma_px": 0.5, "applied": False}}
    for seed, photo in ((1, camera), (2, perfect)):
        folder = tmp_path / f"photo_{seed:06d}_soft"
        folder.mkdir()
        (folder / "sample.json").write_text(json.dumps({"photo": photo}))
    clean = SimpleNamespace(photo_config=PhotoConfig(camera_effects=False), generate=generate)
    folders, _ = write_held_out_photos(tmp_path, clean, [1, 2], {"soft": []})
    # a perfect camera's benchmark keeps its own photo and renders the camera's photo again
    assert [f.name for f in folders] == ["photo_000002_soft"] and asked == [1]
    # and the default camera the other way round: seed 1's skip under the perfect camera is not reused, and its
    # camera photo (kept, since no new render landed) is the default camera's own
    as_drawn = SimpleNamespace(photo_config=PhotoConfig(), generate=generate)
    folders, _ = write_held_out_photos(tmp_path, as_drawn, [1, 2], {"soft": []})
    assert [f.name for f in folders] == ["photo_000001_soft"] and asked == [1, 2]
