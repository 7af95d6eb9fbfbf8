"""Every config composes (Hydra's own errors for bad keys) and every ``_target_`` instantiates."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra import compose, initialize
from hydra.core.hydra_config import HydraConfig
from hydra.errors import ConfigCompositionException, InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, open_dict

from fds.assets import AssetError

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
# groups selected by train.yaml whose options are each composed and instantiated
GROUPS = ["facemodel", "render", "data", "model", "trainer", "logger", "callbacks"]
# options that only build on a CUDA machine
NEEDS_CUDA = {("trainer", "gpu"), ("trainer", "ddp")}


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIGS / group).glob("*.yaml"))


def _compose(name: str, overrides: list[str], tmp_path: Path) -> DictConfig:
    with initialize(version_base="1.3", config_path="../configs"):
        cfg = compose(config_name=name, overrides=overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path / "run")
        cfg.paths.log_dir = str(tmp_path / "logs")
        cfg.paths.data_dir = str(tmp_path / "data")
    return cfg


def _targets(node: DictConfig) -> list[DictConfig]:
    if "_target_" in node:
        return [node]
    return [v for v in node.values() if isinstance(v, DictConfig) and "_target_" in v]


@pytest.mark.parametrize("name", ["train", "infer", "eval"])
def test_top_level_configs_compose(name, tmp_path):
    cfg = _compose(name, ["input=photo.jpg"] if name == "infer" else [], tmp_path)
    assert cfg.task_name == name
    assert cfg.paths.assets_dir is None or isinstance(cfg.paths.assets_dir, str)


@pytest.mark.parametrize("group,option", [(g, o) for g in GROUPS for o in options(g)])
def test_every_group_option_instantiates(group, option, tmp_path, tiny_bfm_h5):
    if (group, option) in NEEDS_CUDA and not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    overrides = [f"{group}={option}"]
    if (group, option) == ("facemodel", "bfm2017"):  # users bring the model file: use the test's tiny one
        overrides.append(f"facemodel.h5_path={tiny_bfm_h5[0]}")
    cfg = _compose("train", overrides, tmp_path)
    nodes = _targets(cfg[group])
    if not nodes:  # a settings-only group (e.g. render): composing is the check
        assert len(cfg[group]) > 0
    for node in nodes:
        assert instantiate(node) is not None


def test_missing_user_asset_is_named_through_hydra(tmp_path, monkeypatch):
    monkeypatch.setenv("FDS_OFFLINE", "1")
    cfg = _compose("train", ["facemodel=bfm2017"], tmp_path)
    with pytest.raises(InstantiationException) as err:
        instantiate(cfg.facemodel)
    assert isinstance(err.value.__cause__, AssetError) or "model2017-1_bfm_nomouth.h5" in str(err.value)
    assert "faces.dmi.unibas.ch" in str(err.value)


@pytest.mark.parametrize("experiment", options("experiment"))
def test_experiments_build_their_data_model_and_trainer(experiment, tmp_path):
    """Every experiment composes, passes the units check and instantiates its data, model and trainer (no fit)."""
    from fds.data.datamodules import GeoAppDataModule
    from fds.data.patches import channels_of, in_channels
    from fds.models.module import DFDNModule
    from fds.training import check_units

    text = (CONFIGS / "experiment" / f"{experiment}.yaml").read_text()
    assert text.startswith("# @package _global_")
    cfg = _compose("train", [f"experiment={experiment}"], tmp_path)
    check_units(cfg)
    data, model = instantiate(cfg.data), instantiate(cfg.model)
    assert isinstance(data, GeoAppDataModule) and isinstance(model, DFDNModule)
    # the units reached both ends: the patches the data cut are the patches the model's basis spans, in the
    # same mm per network unit, for the same regions
    assert data.scans.hparams.disp_scale_mm == model.hparams.disp_scale_mm == cfg.units.disp_scale_mm
    basis = model.generator.model_for(cfg.units.regions[0]).basis
    assert (data.scans.hparams.patch_size,) * 2 == basis.patch_size == (cfg.units.patch_size,) * 2
    assert data.scans.regions == list(cfg.units.regions) == list(model.generator.regions)
    assert (data.wild is not None) == cfg.data.use_wild
    # the input mode the units set is the one the data cut, and as wide as the generator's first layer
    units = cfg.units
    assert data.scans.channels == channels_of(bool(cfg.data.scans.rgb), units.log_input, units.shading_cue,
                                              units.photo_scale, units.luma)
    assert in_channels(data.scans.channels) == cfg.model.generator.model.pdim.in_channels
    instantiate(cfg.trainer)


def test_finetune_recipe_continues_the_shipped_geometry_pretraining_on_scans_and_photos(tmp_path):
    cfg = _compose("train", ["experiment=dfdn_geo_app_finetune"], tmp_path)
    assert cfg.data._target_.endswith("GeoAppDataModule") and cfg.model.warmup_epochs == 0
    assert cfg.units.disp_scale_mm == cfg.model.disp_scale_mm == cfg.data.scans.disp_scale_mm == 0.5
    # every clone can reproduce the shipped checkpoint: the start weights (geometry pre-training) ship beside it
    assert (Path(cfg.paths.root_dir) / "checkpoints" / "dfdn_lite_geo.safetensors").is_file()
    assert cfg.init_weights.endswith("checkpoints/dfdn_lite_geo.safetensors")


def test_wrong_key_gives_hydras_error(tmp_path):
    with pytest.raises(ConfigCompositionException):
        _compose("train", ["trainer=tpu"], tmp_path)
    with pytest.raises(ConfigCompositionException):
        _compose("train", ["model.no_such_key=1"], tmp_path)


def test_wandb_is_offline_inside_the_run_folder(tmp_path):
    cfg = _compose("train", [], tmp_path)
    assert cfg.logger.wandb.offline is True
    assert cfg.logger.wandb.save_dir == str(tmp_path / "run")


def test_shared_groups_drive_the_stages(tmp_path):
    """`facemodel=` and `render.backend=` reach every stage that uses them (data generation, proxy unwrap)."""
    cfg = _compose("train", ["facemodel=ict", "render.backend=torch"], tmp_path)
    assert cfg.data.scans.generator.face_model == "ict" and cfg.data.wild.proxy.face_model == "ict"
    assert cfg.data.wild.proxy.unwrap.backend == "torch"
    infer_cfg = _compose("infer", ["input=x.jpg", "render.backend=torch"], tmp_path)
    assert infer_cfg.proxy.unwrap.backend == "torch"


def test_units_are_set_in_one_place(tmp_path):
    """Data and model read the units through ${units.*}: setting one there moves both; setting a key that reads
    it instead is refused by train() before any data or model is built."""
    from fds.training import check_units, train

    cfg = _compose("train", ["units.disp_scale_mm=0.5", "units.patch_size=128"], tmp_path)
    assert cfg.data.scans.disp_scale_mm == cfg.model.disp_scale_mm == 0.5
    assert cfg.data.wild.patch_size == cfg.model.generator.model.basis.patch_size == 128
    check_units(cfg)
    for key, value in (("data.scans.disp_scale_mm", 0.5), ("model.generator.model.basis.patch_size", 128),
                       ("data.wild.regions", "[face]"), ("data.scans.generator.resolution", 512),
                       ("data.wild.log_input", "true")):
        bad = _compose("train", [f"{key}={value}", "data.scans.generate_if_empty=false"], tmp_path)
        with pytest.raises(ValueError, match=f"{key}=.* but units") as err:
            train(bad)
        assert "units." in str(err.value)
        assert not (tmp_path / "data").exists()  # refused before any work: no data generated or read


def test_evaluation_scores_the_maps_inference_writes(tmp_path):
    """The README's tables come from eval/run.py: its networks run as infer.py's defaults run them (flip-averaged
    or not, the same patch stride, the same edge fade), so the figures describe what a user's outputs carry."""
    infer_cfg = _compose("infer", ["input=x.jpg"], tmp_path)
    eval_cfg = _compose("eval", [], tmp_path)
    assert eval_cfg.flip_average == infer_cfg.detail.flip_average
    assert eval_cfg.patch_stride == infer_cfg.detail.patch_stride
    assert eval_cfg.photo_level.edge_blur_texels == infer_cfg.detail.edge_blur_texels
