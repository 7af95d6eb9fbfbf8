"""eval/run.py end to end at 256² (held-out procedural scans + real photos): every method scored by the same code,
reports, figures, the README block and the offline W&B run written."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate

from fds.data.procedural import ProceduralScanGenerator, write_procedural_samples
from fds.data.sample_io import list_samples, read_sample
from fds.detail import DetailPredictor
from fds.evaluation import evaluate, highpass, map_errors, summarise, wrinkle_mask
from fds.facemodel import region_masks
from fds.models.checkpoint import save_detail_checkpoint
from fds.reports import README_END, README_START

ROOT = Path(__file__).resolve().parents[1]
RES = 256  # one 256² patch per zone: the networks run once per map


@pytest.fixture(scope="module")
def setup(tmp_path_factory, shared_data):
    tmp = tmp_path_factory.mktemp("eval")
    readme = tmp / "README.md"
    readme.write_text((ROOT / "README.md").read_text())
    with initialize(version_base="1.3", config_path="../configs"):
        model_cfg = compose(config_name="train").model
        torch.manual_seed(0)
        module = instantiate(model_cfg)
        ckpt = save_detail_checkpoint(tmp / "m.safetensors", module.state_dict(), model_cfg, map_resolution=RES)
        gen = ProceduralScanGenerator(resolution=RES, albedo_dirs=(), cache_dir=str(tmp / "cache"))
        write_procedural_samples(tmp / "train_scans", 1, gen, start_seed=0)
        cfg = compose(config_name="eval", return_hydra_config=True, overrides=[
            f"ckpt={ckpt}", f"paths.output_dir={tmp / 'run'}", f"paths.data_dir={tmp}", "device=cpu",
            "data.scans.num_generate=2", "data.scans.generator.albedo_max_photos=0",
            f"highpass.fit_dir={tmp / 'train_scans'}", f"proxy.unwrap.resolution={RES}", f"readme={readme}",
            "photos.labelled_max_photos=2", f"photos.wild_dirs=[{shared_data}/faces/wild/smirk]",
            "photos.wild_max_photos=1", "photos.exclude_training_photos=null",  # logger: W&B offline + CSV
            "photo_level.num_heads=1", f"+compare.again={ckpt}"])  # the same weights again as a compared checkpoint
    HydraConfig.instance().set_config(cfg)
    return tmp, evaluate(cfg)


@pytest.mark.slow
def test_every_method_is_scored_and_reported(setup):
    tmp, payload = setup
    results = payload["results"]
    assert set(results) == {"dfdn", "untrained", "zero", "highpass", "dfdn_again"}
    assert results["dfdn_again"] == results["dfdn"]  # a compared checkpoint is scored by the same code
    level = payload["photo_level"]  # one held-out head under three lightings, through the real proxy stage
    assert len(level["rows"]) + len(level["skipped"]) == 3
    for row in level["rows"]:
        assert {"dfdn", "untrained", "zero", "highpass", "dfdn_again", "mirrored_gt"} <= set(row["scores"])
    for method in results.values():
        assert {"all", "wrinkles", "forehead", "eyes", "nose", "cheeks", "mouth"} <= set(method)
        for region in method.values():
            assert 0 <= region["normal_under_5deg"] <= region["normal_under_10deg"] <= region["normal_under_20deg"] <= 1
            assert region["disp_rmse_mm"] >= region["disp_mae_mm"] >= 0
            assert 0 < region["normal_ssim"] < 1 and 10 < region["normal_psnr_db"] < math.inf
    out = tmp / "run" / "eval"
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["held_out_samples"] == 2 and saved["seeds"] == [900000, 900001]  # seeds no training uses
    # metrics.json holds what the checkpoint earns: its MAE over every valid face texel of both scans, recomputed
    # here from full maps predicted as evaluation predicts them: as inference runs the network by default
    # (flip-averaged, half a patch between windows: infer.yaml and eval.yaml agree, tests/test_configs.py), but by
    # the module itself
    predictor = DetailPredictor.from_checkpoint(tmp / "m.safetensors", batch_size=8, fused=False)
    num = den = 0.0
    for folder in list_samples(tmp / "heldout_scans"):
        s = read_sample(folder)
        valid = s.mask.astype(bool) & region_masks(predictor.face_model, RES)["face"]
        num += float(np.abs(predictor.full_map(s.texture).displacement_mm - s.displacement_mm)[valid].sum())
        den += float(valid.sum())
    assert saved["results"]["dfdn"]["all"]["disp_mae_mm"] == pytest.approx(num / den, rel=1e-5)
    assert saved["results"]["dfdn"]["all"]["disp_mae_mm"] != saved["results"]["zero"]["all"]["disp_mae_mm"]
    report = (out / "report.md").read_text()
    assert report.count("| highpass |") == len(results["highpass"])
    for png in ("normal_error_hist.png", "region_bars.png", "uv_error_maps.png", "photo_rerenders.png"):
        assert (out / png).stat().st_size > 10_000 and f"]({png})" in report  # beside report.md, linked from it


@pytest.mark.slow
def test_readme_block_is_the_results_table(setup):
    tmp, payload = setup
    table = (tmp / "run" / "eval" / "readme_table.md").read_text()
    assert table.startswith(README_START) and table.rstrip().endswith(README_END)
    # two tables: the held-out scans (one row per method), then the photo-level benchmark (+ the training target
    # as the ceiling and the mirrored GT as chance)
    tables = "\n".join(ln if ln.startswith("|") else "" for ln in table.splitlines()).split("\n\n")
    scans, level = ([ln for ln in t.strip().splitlines()[2:]] for t in tables if t.strip())
    assert len(scans) == len(payload["results"]) == 5
    assert f"{payload['results']['zero']['all']['normal_deg']:.2f}" in scans[2] and "zero detail" in scans[2]
    if payload["photo_level"]["rows"]:
        assert len(level) == len(payload["results"]) + 2
        assert "training target" in level[-2] and "mirrored GT" in level[-1]
    readme, original = (tmp / "README.md").read_text(), (ROOT / "README.md").read_text()
    assert table.rstrip() in readme  # the block was replaced; the rest of the file is untouched
    assert readme[: readme.index(README_START)] == original[: original.index(README_START)]
    assert readme[readme.index(README_END):] == original[original.index(README_END):]


@pytest.mark.slow
def test_zero_baseline_error_is_the_gt_magnitude(setup):
    """Zero detail scores exactly the mean |GT| displacement (mm) over the valid face texels, and its normal-map
    PSNR is the per-sample mean of kornia's PSNR between a flat normal map and the GT's."""
    import kornia

    from fds.facemodel import load_face_model
    from fds.render.normals import normals_from_displacement

    tmp, payload = setup
    face = region_masks(load_face_model("sfm"), RES)["face"]
    num = den = 0.0
    psnr = []
    for folder in list_samples(tmp / "heldout_scans"):
        s = read_sample(folder)
        valid = s.mask.astype(bool) & face
        num += float(np.abs(s.displacement_mm[valid]).sum())
        den += float(valid.sum())
        gt = normals_from_displacement(torch.from_numpy(s.displacement_mm)[None, None], tuple(s.meta["texel_mm"]))
        gt_image = (gt[0][:, torch.from_numpy(valid)] + 1) / 2
        psnr.append(float(kornia.metrics.psnr(torch.full_like(gt_image, 0.5).index_fill(0, torch.tensor([2]), 1.0),
                                              gt_image, 1.0)))
    zero = payload["results"]["zero"]["all"]
    assert zero["disp_mae_mm"] == pytest.approx(num / den, rel=1e-5)
    assert zero["normal_psnr_db"] == pytest.approx(np.mean(psnr), rel=1e-5)
    assert zero["disp_mae_mm"] > 0.005  # the scans carry real detail
    assert zero["normal_under_20deg"] > zero["normal_under_5deg"]
    assert payload["results"]["highpass"]["all"]["disp_mae_mm"] != pytest.approx(zero["disp_mae_mm"], rel=1e-6)


@pytest.mark.slow
def test_photo_metrics(setup, shared_data):
    """NME on the first and last labelled photo; the wild photo's fit error is its proxy's landmark vertices
    projected into the photo; each method's re-render is scored (detail changes it)."""
    from fds.proxy.fit import project_px
    from fds.proxy.stage import ProxyStage

    tmp, payload = setup
    photos = payload["photos"]
    labelled = sorted(p.name for p in (shared_data / "faces" / "labelled").iterdir() if p.suffix != ".pts"
                      and p.with_suffix(".pts").is_file())
    assert [r["photo"] for r in photos["labelled"]] == [labelled[0], labelled[-1]]
    assert all(0 < r["nme"] < 0.08 for r in photos["labelled"])
    [wild] = photos["wild"]
    assert wild["ok"] and photos["summary"]["wild"]["completion_rate"] == 1.0
    stage = ProxyStage({"unwrap": {"resolution": RES}}, cache_dir=tmp / "cache" / "proxy")
    [result] = stage(next((shared_data / "faces" / "wild" / "smirk").iterdir()))  # from the eval's cache
    fm = stage.face_model
    idx = fm.landmarks_ibug68
    fixed = [k for k in range(68) if idx[k] >= 0 and not (8 > k or 8 < k < 17)]  # mapped, jaw contour left out
    fit = result.fit
    projected = project_px(fit.vertices_mm[idx[fixed]], fit.rotation, fit.translation_mm, fit.scale_px_per_mm,
                           fit.image_size)
    px = float(np.linalg.norm(projected - result.landmarks_px[fixed], axis=1).mean())
    eyes = float(np.linalg.norm(result.landmarks_px[36] - result.landmarks_px[45]))
    assert wild["reprojection_px"] == pytest.approx(px, rel=1e-4)
    assert wild["reprojection_nme"] == pytest.approx(px / eyes, rel=1e-4)
    l1 = wild["photometric_l1"]
    assert set(l1) == set(payload["results"]) and all(0 < v < 0.3 for v in l1.values())
    assert l1["highpass"] != pytest.approx(l1["zero"], rel=1e-7)


@pytest.mark.slow
def test_wandb_offline_run_has_tables_and_figures(setup):
    tmp, _ = setup
    [run] = (tmp / "run" / "wandb").glob("offline-run-*")  # offline, inside the run folder
    media = run / "files" / "media"
    assert list(media.glob("table/eval/scans_per_region_*.table.json"))
    assert list(media.glob("table/eval/wild_photos_*.table.json"))
    images = {p.name.split("_")[0] for p in media.glob("images/eval/*.png")}
    assert {"normal", "region", "uv", "photo"} <= images
    table = json.loads(next(media.glob("table/eval/scans_per_region_*.table.json")).read_text())
    assert table["columns"][:3] == ["method", "region", "disp_mae_mm"] and len(table["data"]) >= 4 * 6


def test_map_errors_are_exact_on_analytic_maps():
    gt = np.zeros((32, 32), np.float32)
    e = map_errors(gt + 0.3, gt, (0.5, 0.5))  # a constant offset: MAE = offset, no tilt, identical normal maps
    s = summarise(e.abs_mm.ravel(), e.angle_deg.ravel())
    assert s["disp_mae_mm"] == pytest.approx(0.3) and s["normal_deg"] == pytest.approx(0, abs=1e-3)
    assert e.ssim.min() == pytest.approx(1.0, abs=1e-5)
    ramp = np.tile(np.arange(32, dtype=np.float32) * 0.5 * np.tan(np.deg2rad(10)), (32, 1))  # 10° slope along u
    e = map_errors(ramp, gt, (0.5, 0.5))
    assert np.median(e.angle_deg[4:-4, 4:-4]) == pytest.approx(10, abs=0.05)


def test_highpass_removes_smooth_shading():
    yy, xx = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    smooth = (0.01 * xx + 0.02 * yy)[None, None]
    assert highpass(smooth)[..., 12:-12, 12:-12].abs().max() < 1e-4  # linear shading has no high-pass
    crease = smooth.clone()
    crease[..., :, 30:33] -= 0.5
    assert highpass(crease)[..., 20:40, 31].mean() < -0.3


def test_wrinkle_mask_marks_groove_walls_only():
    texel = (0.25, 0.25)  # mm
    flat = np.zeros((64, 64), np.float32)
    assert not wrinkle_mask(flat, texel).any()
    # a groove 0.3 mm deep and ~1 mm wide along the rows: its walls tilt the normal by ~20°, far from it nothing
    cols = np.arange(64, dtype=np.float32)
    groove = np.tile(-0.3 * np.exp(-0.5 * ((cols - 32) / 2.0) ** 2), (64, 1))
    m = wrinkle_mask(groove, texel)
    assert m[:, 28:31].all() and m[:, 34:37].all()  # both walls
    assert not m[:, :20].any() and not m[:, 44:].any()
    # speckle at one texel (pores) is blurred away: not wrinkle relief
    pores = 0.02 * np.random.default_rng(0).standard_normal((64, 64)).astype(np.float32)
    assert wrinkle_mask(pores, texel).mean() < 0.01
