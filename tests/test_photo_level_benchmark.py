"""The photo-level benchmark on a real rendered photo (a held-out head under the hard side light, through the real
proxy stage): the GT the networks are trained on scores where the done criteria need it, the mirrored GT at
chance, and relief along lines the GT says are flat (eyebrow hairs, hair strands, stubble, cast-shadow edges) is
caught, for the shipped checkpoint too."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from fds.data.photo_scans import PhotoScanGenerator
from fds.data.sample_io import read_sample
from fds.evaluation_photo_level import LIGHTINGS, load_case, score_case, write_held_out_photos
from fds.threads import torch_threads

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "checkpoints" / "dfdn_lite.safetensors"
# a small photo (face ≈ 320 px wide) keeps rendering and scoring short; the checkpoint needs 1024² UV maps
SMALL = {"face_width_px": [300.0, 340.0], "yaw_deg": 20.0, "pitch_deg": 10.0, "roll_deg": 5.0}


@pytest.fixture(scope="module")
def row(tmp_path_factory, sfm) -> Iterator[dict]:
    with torch_threads(1):  # restored after the module's tests: later ones compare float sums bit for bit
        yield _score_row(tmp_path_factory, sfm)


def _score_row(tmp_path_factory, sfm) -> dict:
    from fds.detail.predictor import DetailPredictor
    from fds.evaluation import _highpass_map_predictor, detail_methods
    from fds.models.checkpoint import load_detail_module

    tmp = tmp_path_factory.mktemp("photo_level")
    gen = PhotoScanGenerator("sfm", 1024, 1024, cache_dir=tmp / "cache", photo=SMALL)
    for seed in range(3, 12):
        folders, _ = write_held_out_photos(tmp / "photos", gen, [seed], {"hard_side": LIGHTINGS["hard_side"]})
        if folders:
            break
    else:
        pytest.fail("no photo of seeds 3..11 got a proxy")
    sample = read_sample(folders[0])
    target = (sample.displacement_mm * sample.mask).astype(np.float32)  # the GT in the fitted UV: what training sees
    # as infer.py and eval/run.py run the network by default (flip-averaged, half a patch between windows)
    predictor = DetailPredictor(load_detail_module(SHIPPED, "cpu"), sfm, batch_size=8, source=SHIPPED)
    methods = detail_methods(predictor, 1.0)
    # the heuristic's scale does not matter here: every score used below is a ratio within one method
    methods["highpass"] = _highpass_map_predictor(1.0)
    methods["target"] = lambda texture, fit: target
    return score_case(load_case(folders[0]), methods, sfm, 1024)


@pytest.mark.slow  # ~3 min on a shared CPU: renders a photo, fits the proxy, runs two networks over 1024² maps
def test_the_training_target_meets_the_done_criteria_and_the_mirror_is_chance(row):
    target, mirrored, zero = (row["scores"][m]["all"] for m in ("target", "mirrored_gt", "zero"))
    # the done criteria ask a network for r ≥ 0.5, amplitude 0.6–1.5 and less error than no detail; the GT it is
    # trained towards must meet them on this benchmark, or they measure the benchmark, not the network
    assert target["detail_r"] >= 0.5 and 0.6 <= target["amplitude_ratio"] <= 1.5
    assert target["normal_deg"] < zero["normal_deg"] == pytest.approx(zero["normal_deg_zero"])
    # the mirrored GT has the GT's statistics on other parts of the face: ~1e5 pixels correlated over a few px
    # leave chance |r| at ~0.01
    assert abs(mirrored["detail_r"]) < 0.1 and mirrored["amplitude_ratio"] > 0.5
    assert row["line_pixels"] > 500  # eyebrow hairs and the side light's shadow edges were found
    assert SMALL["face_width_px"][0] <= row["face_width_px"] <= SMALL["face_width_px"][1]  # from its sample.json
    # the benchmark's own ceiling control is that training target, read from the sample folder
    assert row["scores"]["fitted_gt"] == row["scores"]["target"]


@pytest.mark.slow
def test_relief_along_flat_lines_is_caught(row):
    # reference: the training target's own relief on the lines relative to the skin around (1 = the GT's)
    reference = max(1.0, row["line_relief"]["target"])
    # negative controls: brightness high-pass turns every dark line into a groove; the untrained network's faint
    # output follows the input's edges, dark lines included
    assert row["line_relief"]["highpass"] > reference
    assert row["line_relief"]["untrained"] > reference


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="the shipped checkpoint (luma + cue + scale, since 2026-12-07) still grooves "
                   "dark lines on this small (~320 px) hard-side photo: line relief 1.18x the GT's as inference runs "
                   "it (flip-averaged, half-patch grid; 1.31x in one pass on the paper's grid, the ninth round 1.25x; "
                   "round 8, dfdn_lite_v: 1.45x; the training target 0.86x); over the 10-head benchmark it is 0.99x "
                   "the GT's (issue 15); a checkpoint that keeps them flat here passes: then drop this marker")
def test_shipped_checkpoint_keeps_flat_lines_flat(row):
    assert row["line_relief"]["dfdn"] <= max(1.0, row["line_relief"]["target"])
