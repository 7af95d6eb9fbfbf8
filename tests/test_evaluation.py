"""eval/run.py on held-out procedural scans: every method scored by the same code, reports written."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hydra import compose, initialize
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate

from fds.data.procedural import ProceduralScanGenerator, write_procedural_samples
from fds.evaluation import evaluate, highpass
from fds.models.checkpoint import save_detail_checkpoint


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("eval")
    with initialize(version_base="1.3", config_path="../configs"):
        model_cfg = compose(config_name="train").model
        torch.manual_seed(0)
        module = instantiate(model_cfg)
        ckpt = save_detail_checkpoint(tmp / "m.safetensors", module.state_dict(), model_cfg, map_resolution=512)
        gen = ProceduralScanGenerator(resolution=512, albedo_dirs=(), cache_dir=str(tmp / "cache"))
        write_procedural_samples(tmp / "train_scans", 1, gen, start_seed=0)
        cfg = compose(config_name="eval", return_hydra_config=True, overrides=[
            f"ckpt={ckpt}", f"paths.output_dir={tmp / 'run'}", f"paths.data_dir={tmp}", "device=cpu",
            "data.num_generate=2", "data.generator.resolution=512", "data.generator.albedo_max_photos=0",
            f"highpass_fit_dir={tmp / 'train_scans'}", "logger=csv"])
    HydraConfig.instance().set_config(cfg)
    return tmp, evaluate(cfg)


def test_every_method_is_scored_and_reported(setup):
    tmp, results = setup
    assert set(results) == {"dfdn", "untrained", "zero", "highpass"}
    for method in results.values():
        assert {"all", "forehead", "eyes", "nose", "cheeks", "mouth"} <= set(method)
        for region in method.values():
            assert 0 <= region["normal_under_5deg"] <= region["normal_under_10deg"] <= region["normal_under_20deg"] <= 1
            assert region["disp_rmse_mm"] >= region["disp_mae_mm"] >= 0
    payload = json.loads((tmp / "run" / "eval" / "metrics.json").read_text())
    assert payload["held_out_samples"] == 2 and payload["seeds"] == [900000, 900001]  # seeds no training uses
    report = (tmp / "run" / "eval" / "report.md").read_text()
    assert report.count("| highpass |") == len(results["highpass"])


def test_zero_baseline_error_is_the_gt_magnitude(setup):
    """Zero detail scores exactly the mean |GT| displacement (mm) over the valid face texels."""
    from fds.data.sample_io import list_samples, read_sample
    from fds.facemodel import load_face_model

    tmp, results = setup
    face = load_face_model("sfm").region_masks(512)["face"]
    num = den = 0.0
    for folder in list_samples(tmp / "heldout_scans"):
        s = read_sample(folder)
        valid = s.mask.astype(bool) & face
        num += float(np.abs(s.displacement_mm[valid]).sum())
        den += float(valid.sum())
    zero = results["zero"]["all"]
    assert zero["disp_mae_mm"] == pytest.approx(num / den, rel=1e-5)
    assert zero["disp_mae_mm"] > 0.005  # the scans carry real detail
    assert zero["normal_under_20deg"] > zero["normal_under_5deg"]
    assert results["highpass"]["all"]["disp_mae_mm"] != pytest.approx(zero["disp_mae_mm"], rel=1e-6)


def test_texel_errors_are_exact_on_analytic_maps():
    from fds.evaluation import summarise, texel_errors

    gt = np.zeros((32, 32), np.float32)
    abs_err, angle = texel_errors(gt + 0.3, gt, (0.5, 0.5))  # a constant offset: MAE = offset, no tilt
    s = summarise(abs_err.ravel(), angle.ravel())
    assert s["disp_mae_mm"] == pytest.approx(0.3) and s["normal_deg"] == pytest.approx(0, abs=1e-3)
    ramp = np.tile(np.arange(32, dtype=np.float32) * 0.5 * np.tan(np.deg2rad(10)), (32, 1))  # 10° slope along u
    _, angle = texel_errors(ramp, gt, (0.5, 0.5))
    assert np.median(angle[4:-4, 4:-4]) == pytest.approx(10, abs=0.05)


def test_highpass_removes_smooth_shading():
    yy, xx = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    smooth = (0.01 * xx + 0.02 * yy)[None, None]
    assert highpass(smooth)[..., 12:-12, 12:-12].abs().max() < 1e-4  # linear shading has no high-pass
    crease = smooth.clone()
    crease[..., :, 30:33] -= 0.5
    assert highpass(crease)[..., 20:40, 31].mean() < -0.3
