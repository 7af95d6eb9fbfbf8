"""Weights-only checkpoints: save → load reproduces predictions; bad files give clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra import compose, initialize
from hydra.utils import instantiate
from omegaconf import OmegaConf

from fds.models.architecture import DFDNSpec, SchemaError
from fds.models.checkpoint import (
    CheckpointError,
    export_training_checkpoint,
    load_detail_module,
    load_start_weights,
    read_detail_checkpoint,
    save_detail_checkpoint,
)


@pytest.fixture(scope="module")
def lite_cfg():
    with initialize(version_base="1.3", config_path="../../configs"):
        # resolved into a standalone node (it reads ${units.*} from the whole config), as checkpoints store it
        return OmegaConf.create(OmegaConf.to_container(compose(config_name="train", overrides=["model=lite"]).model,
                                                       resolve=True))


@pytest.fixture(scope="module")
def trained_like(lite_cfg):
    torch.manual_seed(0)
    module = instantiate(lite_cfg)
    with torch.no_grad():  # move every weight away from its init so a wrong load would show
        for p in module.generator.parameters():
            p.add_(0.01 * torch.randn_like(p))
    return module.eval()


def _predict(module, x):
    with torch.no_grad():
        return module.predict_step({"input": x, "region": ["forehead"] * len(x)}, 0)["displacement_mm"]


def test_save_load_reproduces_predictions(tmp_path, lite_cfg, trained_like, astronaut):
    path = save_detail_checkpoint(tmp_path / "m.safetensors", trained_like.state_dict(), lite_cfg, map_resolution=1024)
    tensors, meta = read_detail_checkpoint(path)
    assert meta.map_resolution == 1024 and meta.disp_scale_mm == lite_cfg.disp_scale_mm
    assert path.stat().st_size < 25e6
    loaded = load_detail_module(path)
    v = torch.from_numpy(astronaut[:256, 128:384].max(-1) / 255.0).float()
    x = torch.stack([(v - v.mean()) * 2, (v.T - v.mean()) * 2])[:, None]
    torch.testing.assert_close(_predict(loaded, x), _predict(trained_like, x))


def test_export_from_a_training_run(tmp_path, lite_cfg, trained_like):
    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / "checkpoints").mkdir()
    model = OmegaConf.to_container(lite_cfg)
    model["disp_scale_mm"] = "${units.disp_scale_mm}"  # as the model configs read it
    units = {"disp_scale_mm": 2.0, "patch_size": 256, "regions": ["forehead", "mouth"], "map_resolution": 512}
    run_cfg = {"model": model, "units": units, "data": {"scans": {"generator": {"resolution": "${units.map_resolution}",
                                                                               "face_model": "sfm"}, "rgb": False}}}
    OmegaConf.save(OmegaConf.create(run_cfg), run / ".hydra" / "config.yaml", resolve=False)
    torch.save({"state_dict": trained_like.state_dict(), "epoch": 3}, run / "checkpoints" / "last.ckpt")
    out = export_training_checkpoint(run / "checkpoints" / "last.ckpt", tmp_path / "exported.safetensors")
    meta = read_detail_checkpoint(out)[1]
    assert meta.map_resolution == 512 and meta.disp_scale_mm == 2.0
    x = torch.randn(2, 1, 256, 256)
    torch.testing.assert_close(_predict(load_detail_module(out), x), _predict(trained_like, x))
    # a run config without units (an older fds) is named, not guessed from other keys
    OmegaConf.save(OmegaConf.create({k: v for k, v in run_cfg.items() if k != "units"} | {"model": lite_cfg}),
                   run / ".hydra" / "config.yaml")
    with pytest.raises(CheckpointError, match="no `units` block"):
        export_training_checkpoint(run / "checkpoints" / "last.ckpt", tmp_path / "old.safetensors")


def test_bad_checkpoints_are_named(tmp_path, lite_cfg, trained_like):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_detail_module(tmp_path / "missing.safetensors")
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"\x00" * 100)
    with pytest.raises(CheckpointError, match="corrupt.safetensors"):
        load_detail_module(corrupt)
    pickled = tmp_path / "pickle.safetensors"
    torch.save({"x": 1}, pickled)  # a pickle is refused, never unpickled
    with pytest.raises(CheckpointError):
        load_detail_module(pickled)
    good = save_detail_checkpoint(tmp_path / "g.safetensors", trained_like.state_dict(), lite_cfg, map_resolution=1024)
    tensors, meta = read_detail_checkpoint(good)
    from safetensors.torch import save_file

    wrong = {k: (v[..., :1].contiguous() if v.dim() == 4 else v) for k, v in tensors.items()}
    save_file(wrong, str(tmp_path / "wrong.safetensors"), metadata=meta.to_metadata())
    with pytest.raises(CheckpointError, match="does not fit"):
        load_detail_module(tmp_path / "wrong.safetensors")
    save_file(tensors, str(tmp_path / "foreign.safetensors"), metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match="foreign.safetensors.*not an fds DFDN generator"):
        load_detail_module(Path(tmp_path / "foreign.safetensors"))


def test_ema_weights_are_the_ones_inference_runs(tmp_path, lite_cfg):
    """A run with EMA exports the EMA copy; loading must not rebuild a fresh EMA that shadows it."""
    cfg = lite_cfg.copy()
    cfg.ema_decay = 0.99
    torch.manual_seed(1)
    module = instantiate(cfg).eval()
    with torch.no_grad():
        for p in module.generator_ema.parameters():
            p.add_(0.05 * torch.randn_like(p))
    path = save_detail_checkpoint(tmp_path / "ema.safetensors", module.state_dict(), cfg, map_resolution=1024)
    loaded = load_detail_module(path)
    assert loaded.generator_ema is None
    x = torch.randn(2, 1, 256, 256)
    torch.testing.assert_close(_predict(loaded, x), _predict(module, x))


def test_init_weights_starts_a_run_from_a_checkpoint(tmp_path, lite_cfg, trained_like):
    path = save_detail_checkpoint(tmp_path / "pre.safetensors", trained_like.state_dict(), lite_cfg,
                                  map_resolution=1024)
    cfg = OmegaConf.merge(lite_cfg, {"ema_decay": 0.99})
    module = instantiate(cfg)
    load_start_weights(module, path)
    for name, p in trained_like.generator.state_dict().items():
        assert torch.equal(module.generator.state_dict()[name], p), name
        assert torch.equal(module.generator_ema.state_dict()[name], p), name  # the average starts there too
    # a checkpoint trained at another mm scale would silently mis-scale every prediction: refused
    with pytest.raises(CheckpointError, match="trained at disp_scale_mm=2.0 but this run uses 0.25"):
        load_start_weights(instantiate(OmegaConf.merge(cfg, {"disp_scale_mm": 0.25})), path)


def test_init_weights_says_when_the_run_reads_another_image_channel(tmp_path, lite_cfg, trained_like, caplog):
    path = save_detail_checkpoint(tmp_path / "v.safetensors", trained_like.state_dict(), lite_cfg,
                                  map_resolution=1024)  # a V checkpoint
    with caplog.at_level("WARNING", logger="fds.models.checkpoint"):
        load_start_weights(instantiate(lite_cfg), path, luma=False)
    assert not caplog.records
    with caplog.at_level("WARNING", logger="fds.models.checkpoint"):
        load_start_weights(module := instantiate(lite_cfg), path, luma=True)
    assert "was trained reading V" in caplog.text and "this run reads luma" in caplog.text
    for name, p in trained_like.generator.state_dict().items():  # still loaded, as it is
        assert torch.equal(module.generator.state_dict()[name], p), name


RGB_MODEL = {"generator": {"model": {"pdim": {"in_channels": 3}, "pdrm": {"in_channels": 4}}},
             "discriminator": {"model": {"in_channels": 4}}}


def test_a_v_checkpoint_starts_an_rgb_run_as_the_same_network(tmp_path, lite_cfg, trained_like, astronaut):
    """V → RGB widening: on skin, where R is the largest channel, V = R, so the widened network predicts what the
    V network predicts; where another channel is the largest the two differ (G and B start at 0)."""
    path = save_detail_checkpoint(tmp_path / "v.safetensors", trained_like.state_dict(), lite_cfg, map_resolution=1024)
    rgb = instantiate(OmegaConf.merge(lite_cfg, RGB_MODEL)).eval()
    load_start_weights(rgb, path)
    skin = torch.from_numpy(astronaut[64:192, 192:320] / 255.0).float().permute(2, 0, 1)  # her cheek: [3, 128, 128]
    assert bool((skin[0] >= skin[1:].amax(0)).float().mean() > 0.99)  # R is V there, up to a few texels:
    skin[0] = skin.amax(0)  # ... now everywhere
    from fds.data.patches import preprocess

    x = skin[None].repeat(2, 1, 2, 2)  # [2, 3, 256, 256]
    x[1] = x[1].flip(-1)
    torch.testing.assert_close(_predict(rgb, preprocess(x, "rgb")), _predict(trained_like, preprocess(x, "v")))
    blue = x.clone()
    blue[:, 2] = 1.0  # B is now the largest channel: V is flat, the RGB network still sees R's texture
    assert not torch.allclose(_predict(rgb, preprocess(blue, "rgb")), _predict(trained_like, preprocess(blue, "v")),
                              atol=1e-3)


def test_widening_refuses_any_other_shape_change(tmp_path, lite_cfg, trained_like):
    path = save_detail_checkpoint(tmp_path / "v.safetensors", trained_like.state_dict(), lite_cfg, map_resolution=1024)
    wider = OmegaConf.merge(lite_cfg, {"generator": {"model": {"pdim": {"in_channels": 5}}}})  # 4 new inputs
    with pytest.raises(CheckpointError, match="v.safetensors does not fit.*only widening the input by 1–3"):
        load_start_weights(instantiate(wider), path)


WIDE = {"generator": {"model": {"pdim": {"ngf": 32}, "pdrm": {"ngf": 24, "max_mult": 8}}}}


def test_a_narrow_checkpoint_starts_a_wider_run_as_the_same_network(astronaut):
    """U-Net widening (fds.models.widen) on shipped weights (the V-input round, ``dfdn_lite_v``, whose patches are
    one channel): the wider network predicts exactly what the shipped one does, with BatchNorm's running statistics
    (eval) and with batch statistics (training), and its new channels get gradients (they are not dead weight)."""
    shipped = Path(__file__).resolve().parents[2] / "checkpoints" / "dfdn_lite_v.safetensors"
    narrow = load_detail_module(shipped)
    meta = narrow.meta
    config = OmegaConf.create(meta.architecture.to_config())
    wide = DFDNSpec.parse(OmegaConf.to_container(OmegaConf.merge(config, WIDE)), "wide").build()
    load_start_weights(wide, shipped)
    n_wide, n_narrow = (sum(p.numel() for p in m.generator.parameters()) for m in (wide, narrow))
    assert n_wide > 2 * n_narrow
    v = torch.from_numpy(astronaut[:256, 128:384].max(-1) / 255.0).float()
    x = torch.stack([(v - v.mean()) * 2, (v.T - v.mean()) * 2])[:, None]  # [2, 1, 256, 256], two real patches
    wide.eval()
    torch.testing.assert_close(_predict(wide, x), _predict(narrow, x))
    narrow.generator.train()
    wide.generator.train()
    a, b = narrow.generator("forehead", x).refined, wide.generator("forehead", x).refined
    torch.testing.assert_close(b, a)
    b.square().mean().backward()
    pdrm = wide.generator.models["shared"].pdrm
    new_rows = pdrm.down[0][0].weight.grad[16:]  # channels 16..23 of the first level are new
    assert float(new_rows.abs().sum()) == 0.0  # nothing reads them yet ...
    assert float(pdrm.up[0][1].weight.grad[24 + 16:48].abs().sum()) > 0.0  # ... but reading them would pay
    with pytest.raises(CheckpointError, match="dfdn_lite_v.safetensors does not fit.*levels"):
        deeper = OmegaConf.merge(config, {"generator": {"model": {"pdrm": {"num_downs": 5}}}})
        load_start_weights(DFDNSpec.parse(OmegaConf.to_container(deeper), "deeper").build(), shipped)


FINE = {"generator": {"model": {"fine": {"_target_": "fds.models.fine.FineRefiner", "in_channels": 5, "width": 12,
                                         "dilations": [2, 4]}}}}


def test_the_default_starts_a_run_with_the_fine_branch_as_the_same_network(tmp_path, astronaut):
    """The full-resolution branch (fds.models.fine, ``experiment=dfdn_photo_luma_fine``) starts at zero: from the
    shipped default the run predicts what the default does, its last conv gets gradients, and once trained its
    checkpoint saves and loads with the branch (a changed prediction that survives the round trip)."""
    shipped = Path(__file__).resolve().parents[2] / "checkpoints" / "dfdn_lite.safetensors"
    default = load_detail_module(shipped)
    config = OmegaConf.merge(OmegaConf.create(default.meta.architecture.to_config()), FINE)
    fine = DFDNSpec.parse(OmegaConf.to_container(config), "fine").build()
    load_start_weights(fine, shipped)
    y = torch.from_numpy(astronaut[:256, 128:384] @ [0.299, 0.587, 0.114] / 255.0).float()  # luma, [256, 256]
    y = (y - y.mean()) * 2
    x = torch.stack([torch.stack([y, 0.1 * y.roll(1, 0), 0.1 * y.roll(1, 1), torch.full_like(y, 1.0)]),
                     torch.stack([y.T, torch.zeros_like(y), torch.zeros_like(y), torch.full_like(y, 2.0)])])
    fine.eval()
    torch.testing.assert_close(_predict(fine, x), _predict(default, x))
    branch = fine.generator.models["shared"].fine
    fine.generator("forehead", x).refined.square().mean().backward()
    assert float(branch.out.weight.grad.abs().sum()) > 0.0
    with torch.no_grad():  # as if trained: the branch now draws something
        branch.out.weight.normal_(0.0, 0.01)
    moved = _predict(fine, x)
    assert not torch.allclose(moved, _predict(default, x), atol=1e-4)
    path = save_detail_checkpoint(tmp_path / "fine.safetensors", fine.state_dict(), config, map_resolution=1024,
                                  channels=default.meta.channels)
    torch.testing.assert_close(_predict(load_detail_module(path), x), moved)
    with pytest.raises(SchemaError, match="fine.in_channels.*must be 1 \\+ pdim.in_channels = 5, got 4"):
        DFDNSpec.parse(OmegaConf.to_container(OmegaConf.merge(
            config, {"generator": {"model": {"fine": {"in_channels": 4}}}})), "fine")
