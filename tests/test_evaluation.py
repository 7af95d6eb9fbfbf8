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
            f"highpass_fit_dir={tmp / 'train_scans'}", "max_patches=8", "logger=csv"])
    HydraConfig.instance().set_config(cfg)
    return tmp, evaluate(cfg)


def test_every_method_is_scored_and_reported(setup):
    tmp, results = setup
    assert set(results) == {"dfdn", "untrained", "zero", "highpass"}
    for method in results.values():
        assert {"all", "forehead", "mouth"} <= set(method)
        assert all(np.isfinite(v) and v >= 0 for zone in method.values() for v in zone.values())
    payload = json.loads((tmp / "run" / "eval" / "metrics.json").read_text())
    assert payload["held_out_samples"] == 2 and payload["patches"] == 8
    report = (tmp / "run" / "eval" / "report.md").read_text()
    assert report.count("| highpass |") == 3
    # the held-out samples use seeds no training run uses
    assert sorted(p.name for p in (tmp / "heldout_scans").iterdir()) == ["proc_900000", "proc_900001"]


def test_zero_baseline_error_is_the_gt_magnitude(setup):
    """Zero detail scores exactly the mean |GT| displacement (mm) over the valid texels of the held-out patches."""
    from fds.data.sample_io import list_samples
    from fds.data.scans import GeometryGridPatches, ScanFolder

    tmp, results = setup
    patches = GeometryGridPatches(ScanFolder(folders=list_samples(tmp / "heldout_scans")), max_patches=8)
    num = sum(float((p["displacement"].abs() * 2.0 * p["mask"]).sum()) for p in patches)
    den = sum(float(p["mask"].sum()) for p in patches)
    zero = results["zero"]["all"]
    assert zero["disp_mae_mm"] == pytest.approx(num / den, rel=1e-5)
    assert zero["disp_mae_mm"] > 0.005  # the scans carry real detail
    assert results["highpass"]["all"]["disp_mae_mm"] != pytest.approx(zero["disp_mae_mm"], rel=1e-6)


def test_highpass_removes_smooth_shading():
    yy, xx = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    smooth = (0.01 * xx + 0.02 * yy)[None, None]
    assert highpass(smooth)[..., 12:-12, 12:-12].abs().max() < 1e-4  # linear shading has no high-pass
    crease = smooth.clone()
    crease[..., :, 30:33] -= 0.5
    assert highpass(crease)[..., 20:40, 31].mean() < -0.3
