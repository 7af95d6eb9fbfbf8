"""infer.py end to end on real photos: every output written, meshes load with UVs, bad input reported."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import trimesh
from hydra import compose, initialize
from hydra.utils import instantiate
from PIL import Image

from fds.export.maps import read_displacement, read_normal_map
from fds.models.checkpoint import save_detail_checkpoint
from fds.pipeline import infer

EXPECTED = {"proxy.obj", "proxy.mtl", "texture.png", "displacement.png", "displacement.json", "displacement.npy",
            "displacement.exr", "normal_tangent.png", "normal_object.png", "detailed.glb", "detailed.obj",
            "detailed.ply", "preview.png", "result.json"}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """An untrained lite network with perturbed weights: the pipeline's mechanics do not need a trained one."""
    with initialize(version_base="1.3", config_path="../configs"):
        cfg = compose(config_name="train").model
    torch.manual_seed(0)
    module = instantiate(cfg)
    with torch.no_grad():
        for p in module.generator.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return save_detail_checkpoint(tmp_path_factory.mktemp("ckpt") / "m.safetensors", module.state_dict(), cfg,
                                  map_resolution=1024)


def _infer_cfg(tmp_path, inputs, ckpt, out):
    with initialize(version_base="1.3", config_path="../configs"):
        cfg = compose(config_name="infer", overrides=[
            f"input={inputs}", f"ckpt={ckpt}", f"output={out}", f"cache_dir={tmp_path / 'cache'}",
            "bake.max_triangles=200000", "bake.formats=[glb,ply,obj]", "device=cpu",
            "paths.output_dir=" + str(tmp_path)])
    return cfg


@pytest.fixture(scope="module")
def run(tmp_path_factory, checkpoint, astronaut):
    tmp = tmp_path_factory.mktemp("infer")
    photos = tmp / "photos"
    photos.mkdir()
    Image.fromarray(astronaut).save(photos / "astronaut.png")
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    status = infer(_infer_cfg(tmp, photos, checkpoint, tmp / "out"))
    return tmp, tmp / "out", status


@pytest.mark.slow  # the module's pipeline run: minutes on 2 cores
def test_every_output_is_written(run):
    tmp, out, status = run
    files = {p.name for p in (out / "astronaut").iterdir()}
    assert EXPECTED <= files
    assert not [f for f in files if f.endswith(".part")]
    info = json.loads((out / "astronaut" / "result.json").read_text())
    assert info["emotion"]["happy"] > 0.5  # astronaut smiles
    assert info["reprojection_error_px"] < 10
    assert {"proxy_fit", "proxy_unwrap", "detail", "maps", "bake", "preview"} <= set(info["timings_s"])


@pytest.mark.slow  # the module's pipeline run: minutes on 2 cores
def test_bad_photo_is_reported_and_the_run_goes_on(run):
    tmp, out, status = run
    summary = json.loads((out / "summary.json").read_text())
    assert status == 1  # something failed
    assert [s["image"].endswith("astronaut.png") for s in summary["succeeded"]] == [True]
    assert len(summary["failed"]) == 1 and "broken.jpg" in summary["failed"][0]["image"]
    assert "broken.jpg: cannot decode image" in summary["failed"][0]["reason"]
    assert summary["skipped"] == [] and isinstance(summary["succeeded"][0]["warnings"], list)
    assert not (out / "broken").exists()


@pytest.mark.slow  # the module's pipeline run: minutes on 2 cores
def test_maps_and_meshes_are_consistent(run):
    tmp, out, _ = run
    d = out / "astronaut"
    mm_npy, meta = read_displacement(d / "displacement.png", prefer="npy")
    mm_png, _ = read_displacement(d / "displacement.png", prefer="png")
    assert mm_npy.shape == (1024, 1024) and meta["scale_mm"] == 2.0
    assert np.abs(mm_png - mm_npy).max() <= 2.0 / 65535 + 1e-6
    assert np.abs(mm_npy).max() > 0  # the network wrote detail
    mm_exr, _ = read_displacement(d / "displacement.png", prefer="exr")
    np.testing.assert_array_equal(mm_exr, mm_npy)  # the EXR holds the .npy's float32 values exactly
    tangent = read_normal_map(d / "normal_tangent.png")
    assert tangent.shape == (1024, 1024, 3) and (tangent[..., 2] > 0).all()
    proxy = trimesh.load(d / "proxy.obj", process=False, force="mesh")
    detailed = trimesh.load(d / "detailed.obj", process=False, force="mesh")
    ply = trimesh.load(d / "detailed.ply", process=False)
    assert len(proxy.faces) == 6736 and proxy.visual.uv is not None
    assert detailed.visual.uv is not None and len(detailed.faces) > 4 * len(proxy.faces)
    assert len(ply.faces) == len(detailed.faces)
    glb = trimesh.load(d / "detailed.glb", process=False, force="mesh")
    assert len(glb.faces) == len(detailed.faces) and glb.visual.material.normalTexture is not None
    # the detailed surface stays within the displacement range of the proxy surface
    assert abs(detailed.area / proxy.area - 1) < 0.05


@pytest.mark.slow  # the module's pipeline run: minutes on 2 cores
def test_rerun_with_a_good_photo_only_succeeds(run, checkpoint):
    """A rerun (proxy from the cache now) rewrites the photo's folder bit for bit: the cache is exact."""
    tmp, out, _ = run
    folder = out / "astronaut"
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    status = infer(_infer_cfg(tmp, tmp / "photos" / "astronaut.png", checkpoint, out))
    assert status == 0
    after = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert set(after) == set(before)
    for name in sorted(set(before) - {"result.json"}):
        assert after[name] == before[name], name
    info = [json.loads(d["result.json"]) for d in (before, after)]
    for i in info:
        del i["timings_s"]  # the only field that may differ: how long each stage took
    assert info[0] == info[1]
    assert not np.array_equal(np.load(folder / "displacement.npy"), np.zeros((1024, 1024), np.float32))


def test_missing_checkpoint_is_a_clear_error(tmp_path, capsys):
    assert infer(_infer_cfg(tmp_path, tmp_path, tmp_path / "nope.safetensors", tmp_path / "out")) == 2
    assert "nope.safetensors does not exist" in capsys.readouterr().err


def test_no_input_is_a_clear_error(tmp_path, checkpoint, capsys):
    assert infer(_infer_cfg(tmp_path, tmp_path / "nothing*.jpg", checkpoint, tmp_path / "out")) == 2
    assert "matches no image" in capsys.readouterr().err


def test_output_names_never_collide(tmp_path):
    from fds.pipeline import unique_names

    paths = [tmp_path / "a" / "001.jpg", tmp_path / "b" / "001.jpg", tmp_path / "001.png", tmp_path / "x.jpg",
             tmp_path / "x_face1.jpg"]
    names = unique_names(paths)
    assert [names[p] for p in paths] == ["001", "001_2", "001_3", "x", "x_face1_2"]
    assert len(set(names.values())) == len(paths)


def test_face_model_mismatch_is_refused(tmp_path, checkpoint):
    from fds.pipeline import DetailPipeline

    with pytest.raises(ValueError, match="proxy.face_model=sfm"):
        DetailPipeline(checkpoint, proxy={"face_model": "ict"}, device="cpu")


@pytest.mark.slow
def test_flip_average_is_mirror_equivariant(checkpoint, astronaut):
    """Averaging with the mirrored texture's map makes detail synthesis commute with a left-right mirror,
    wherever both maps cover a texel (the UV zones are nearly, not exactly, symmetric)."""
    from fds.detail import DetailPredictor

    flipping = DetailPredictor.from_checkpoint(checkpoint, batch_size=8, flip_average=True)
    texture = np.asarray(Image.fromarray(astronaut).resize((1024, 1024)))
    a = flipping.full_map(texture)
    b = flipping.full_map(np.ascontiguousarray(texture[:, ::-1]))
    both = a.coverage & b.coverage[:, ::-1]
    both &= np.roll(both, 1, 1) & np.roll(both, -1, 1)  # away from the coverage edges
    assert both.mean() > 0.2
    np.testing.assert_allclose(a.displacement_mm[both], b.displacement_mm[:, ::-1][both], atol=1e-5)
    plain = DetailPredictor(flipping.module, flipping.face_model, batch_size=8, flip_average=False).full_map(texture)
    assert np.abs(plain.displacement_mm - a.displacement_mm)[both].max() > 1e-4  # it does change the map


def test_the_windows_per_network_call_do_not_change_the_map(checkpoint, astronaut):
    """``detail.batch_size`` is a speed and memory setting only (the default moved from 16 to 8 windows per call for
    both): each window goes through the network on its own, so the stitched map may differ by float32 rounding at
    most (the convolution kernels may sum in another order for another batch size), never by a window's worth."""
    from fds.detail import DetailPredictor

    texture = np.asarray(Image.fromarray(astronaut).resize((1024, 1024)))
    small = DetailPredictor.from_checkpoint(checkpoint, batch_size=8, flip_average=False)
    large = DetailPredictor(small.module, small.face_model, batch_size=16, flip_average=False)
    a, b = small.full_map(texture), large.full_map(texture)
    np.testing.assert_array_equal(a.coverage, b.coverage)
    scale = float(np.abs(b.displacement_mm).max())
    assert scale > 0
    np.testing.assert_allclose(a.displacement_mm, b.displacement_mm, rtol=0, atol=1e-5 * scale)


def test_a_coarser_patch_stride_covers_the_same_texels_with_fewer_patches(checkpoint, astronaut):
    """``detail.patch_stride``: the default, half a patch between windows, reaches every texel the paper's grid (a
    quarter patch) reaches, in under a third of the windows (4x fewer in the open, fewer saved along zone edges).
    Whether its map is as good is the photo-level benchmark's question (docs/bench_photo_level.md)."""
    from fds.detail import DetailPredictor

    texture = np.asarray(Image.fromarray(astronaut).resize((1024, 1024)))
    half = DetailPredictor.from_checkpoint(checkpoint, batch_size=8, flip_average=False)
    paper = DetailPredictor(half.module, half.face_model, batch_size=8, flip_average=False,
                            patch_stride=half.meta.patch_size // 4)
    a, b = paper.full_map(texture), half.full_map(texture)
    windows = [sum(len(g) for g in m.patches.values()) for m in (a, b)]  # per zone grid
    assert windows[1] * 3 < windows[0]
    np.testing.assert_array_equal(a.coverage, b.coverage)


def test_a_patch_stride_the_checkpoint_cannot_take_is_a_config_error(checkpoint):
    from fds.pipeline import ConfigError, DetailPipeline, DetailSettings

    with pytest.raises(ConfigError, match="detail.patch_stride"):
        DetailSettings(patch_stride=0)
    with pytest.raises(ConfigError, match="detail.patch_stride must be 1 to the patch size"):
        DetailPipeline(checkpoint, settings=DetailSettings(patch_stride=1000), device="cpu")
