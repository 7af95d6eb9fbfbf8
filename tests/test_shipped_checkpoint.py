"""The shipped checkpoint on real photos: relief where the photo has wrinkles, less where it has none."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fds.facemodel import region_masks
from fds.pipeline import DetailPipeline

ROOT = Path(__file__).resolve().parents[1]
FACE_REGIONS = ("forehead", "eyes", "cheeks", "mouth")
SKIN_REGIONS = ("eyes", "cheeks", "mouth")  # bare skin in both photos


@pytest.fixture(scope="module")
def relief(tmp_path_factory, grace_hopper_path, astronaut):
    """RMS displacement (mm) per face region of the shipped network's map for an 85-year-old with deep
    forehead and cheek lines (grace_hopper) and a smooth-skinned young face (astronaut)."""
    tmp = tmp_path_factory.mktemp("relief")
    Image.fromarray(astronaut).save(tmp / "astronaut.png")
    pipe = DetailPipeline(ROOT / "checkpoints" / "dfdn_lite.safetensors", cache_dir=tmp / "cache", device="cpu")
    masks = region_masks(pipe.stage.face_model, pipe.map_resolution)
    out = {}
    for name, path in (("grace_hopper", grace_hopper_path), ("astronaut", tmp / "astronaut.png")):
        disp, coverage, _ = pipe.detail(pipe.stage(path)[0])
        out[name] = {r: float(np.sqrt((disp[masks[r] & coverage] ** 2).mean())) for r in FACE_REGIONS}
        seen = np.concatenate([disp[masks[r] & coverage] for r in FACE_REGIONS])
        out[name]["face"] = float(np.sqrt((seen**2).mean()))
    return out


@pytest.mark.slow
def test_relief_follows_the_wrinkles_of_the_photo(relief):
    old, young = relief["grace_hopper"], relief["astronaut"]
    assert old["face"] > 1.5 * young["face"], relief
    # and in every region where both photos show skin the wrinkled face gets more relief; the forehead is not
    # compared: it lies under Grace Hopper's cap and the astronaut's fringe (hair strands read as grooves there)
    for region in SKIN_REGIONS:
        assert old[region] > young[region], (region, relief)
    assert young["face"] < 0.05  # mm: no invented deep furrows on smooth skin
