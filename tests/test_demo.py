import json

import numpy as np
import pytest
import trimesh
from PIL import Image

from fds.demo import main


@pytest.mark.slow  # 45-75 s on a loaded 2-core CPU
def test_demo_writes_mean_mesh_and_region_masks(tmp_path):
    assert main(["--output", str(tmp_path), "--skip-photo"]) == 0
    summary = json.loads((tmp_path / "demo_summary.json").read_text())["face_model"]
    assert summary["vertices"] == 3448 and summary["triangles"] == 6736
    mesh = trimesh.load(tmp_path / "sfm_mean.obj", process=False, force="mesh")
    assert mesh.visual.uv is not None and len(mesh.faces) == 6736
    masks = {p.stem: np.asarray(Image.open(p)) > 0 for p in (tmp_path / "regions").glob("*.png")}
    assert set(masks) == {"forehead", "brows", "eyes", "nose", "cheeks", "mouth", "chin"}
    assert sum(m.astype(int) for m in masks.values()).max() == 1  # disjoint
    assert abs(masks["forehead"].mean() - summary["uv_coverage"]["forehead"]) < 1e-6
    # idempotent: a second run overwrites in place
    assert main(["--output", str(tmp_path), "--skip-photo"]) == 0
    assert not list(tmp_path.rglob("*.part"))


@pytest.mark.slow  # the whole pipeline on one photo
def test_demo_runs_the_pipeline_on_a_real_photo(tmp_path):
    """`make demo`'s second half: grace_hopper through the whole pipeline with the shipped checkpoint."""
    assert main(["--output", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "demo_summary.json").read_text())
    [folder] = summary["photo"]["outputs"]
    info = json.loads((tmp_path / "grace_hopper" / "result.json").read_text())
    assert folder.endswith("grace_hopper") and info["reprojection_error_px"] < 10
    for name in ("proxy.obj", "displacement.png", "normal_tangent.png", "detailed.glb", "preview.png"):
        assert (tmp_path / "grace_hopper" / name).is_file(), name
    mesh = trimesh.load(tmp_path / "grace_hopper" / "detailed.glb", process=False, force="mesh")
    assert mesh.visual.uv is not None and len(mesh.faces) > 100_000
