"""DataModules yield batches of the documented shapes and dtypes; configs instantiate them."""

from pathlib import Path

import pytest
import torch

from fds.data.datamodules import GeoAppDataModule, ScansDataModule, WildDataModule
from fds.data.sample_io import list_samples

GEN = {"resolution": 128, "albedo_dirs": []}


def _scans(tmp: Path, **kw) -> ScansDataModule:
    args = dict(data_dir=tmp / "scans", num_generate=3, generator=GEN, patch_size=64, batch_size=4,
                train_patches_per_epoch=8, val_max_patches=6, val_fraction=0.3)
    args.update(kw)
    return ScansDataModule(**args)


def _check_geo(b: dict, cin: int = 1, p: int = 64) -> None:
    assert b["input"].shape[1:] == (cin, p, p) and b["input"].dtype == torch.float32
    assert b["displacement"].shape[1:] == (1, p, p) and b["displacement"].dtype == torch.float32
    assert b["mask"].shape == b["displacement"].shape and b["mask"].dtype == torch.float32
    assert b["displacement"].abs().max() <= 1
    # texel size on the surface (mm along u, v) for the metric normal-angle error: ~0.25 mm at 1024², ~2 mm at 128²
    assert b["texel_mm"].shape == (b["mask"].shape[0], 2) and ((b["texel_mm"] > 0.05) & (b["texel_mm"] < 5)).all()
    assert isinstance(b["region"], list) and set(b["region"]) <= {"forehead", "mouth"}
    assert b["mask"].mean() >= 0.3


def test_scans_datamodule_generates_when_empty_and_yields_batches(tmp_path):
    dm = _scans(tmp_path)
    dm.prepare_data()
    assert len(list_samples(tmp_path / "scans")) == 3
    dm.setup("fit")
    assert len(dm.train_folders) == 2 and len(dm.val_folders) == 1
    b = next(iter(dm.train_dataloader()))
    _check_geo(b)
    assert len(b["region"]) == 4
    v = next(iter(dm.val_dataloader()))
    _check_geo(v)
    assert v["top_left"].shape == (4, 2) and v["sample_index"].dtype == torch.int64
    # validation windows are ones training could draw: each at least min_valid valid GT, centred in its zone
    from fds.data.scans import region_zone

    for i in range(len(dm.val_set)):
        item, (_, region, top, left) = dm.val_set[i], dm.val_set.index[i]
        assert item["mask"].mean() >= dm.hparams.min_valid
        assert region_zone("sfm", 128, region)[top + 32, left + 32]
    # an RGB variant over the same folder, and the same seed gives the same patches
    rgb = _scans(tmp_path, rgb=True)
    rgb.setup("fit")
    torch.manual_seed(0)
    b1 = next(iter(rgb.train_dataloader()))
    torch.manual_seed(0)
    b2 = next(iter(rgb.train_dataloader()))
    _check_geo(b1, cin=3)
    assert torch.equal(b1["input"], b2["input"]) and torch.equal(b1["displacement"], b2["displacement"])


def test_samples_made_with_other_occlusion_settings_are_flagged(tmp_path, caplog):
    old = _scans(tmp_path, num_generate=2, generator={**GEN, "occlusion_strength": 0.0})
    old.prepare_data()
    with caplog.at_level("WARNING", logger="fds.data.datamodules"):
        _scans(tmp_path, num_generate=2).setup("fit")        # the config's default look: occlusion on
    assert "cavity-occlusion" in caplog.text and "proc_000000" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="fds.data.datamodules"):
        _scans(tmp_path, num_generate=2, generator={**GEN, "occlusion_strength": 0.0}).setup("fit")
    assert "cavity-occlusion" not in caplog.text


def test_scans_on_the_fly_with_workers(tmp_path):
    dm = _scans(tmp_path, on_the_fly=True, num_on_the_fly=2, num_workers=2, persistent_workers=False)
    dm.setup("fit")
    batches = list(dm.train_dataloader())
    assert sum(len(b["region"]) for b in batches) == 8
    _check_geo(batches[0])


@pytest.fixture(scope="module")
def wild_dm(tmp_path_factory):
    cache = tmp_path_factory.mktemp("wild")
    dm = WildDataModule(photo_dirs=[str(cache / "photos")], include_library_photos=True, max_photos=1,
                        cache_dir=cache, resolution=128, patch_size=64, batch_size=2, train_patches_per_epoch=4,
                        min_visible=0.3)
    (cache / "photos").mkdir()
    (cache / "photos" / "broken.jpg").write_bytes(b"not an image")
    return dm


@pytest.mark.slow  # 45-75 s on a loaded 2-core CPU
def test_wild_datamodule_batches_and_skips_bad_photos(wild_dm):
    wild_dm.hparams.max_photos = None
    wild_dm.setup("fit")
    assert any("broken.jpg" in p for p, _ in wild_dm.skipped)
    assert wild_dm.sources
    b = next(iter(wild_dm.train_dataloader()))
    n = len(b["region"])
    shapes = {"input": (1,), "texture": (3,), "visibility": (1,), "position_mm": (3,), "normal": (3,),
              "albedo": (3,)}
    for key, (c,) in shapes.items():
        assert b[key].shape == (n, c, 64, 64) and b[key].dtype == torch.float32, key
    assert b["sh"].shape == (n, 3, 9)
    assert 0 <= b["texture"].min() and b["texture"].max() <= 1
    vis = b["visibility"] > 0.5
    norm = b["normal"].norm(dim=1, keepdim=True)
    assert torch.allclose(norm[vis], torch.ones_like(norm[vis]), atol=1e-2)
    assert b["position_mm"].abs().max() < 200


@pytest.mark.slow  # 45-75 s on a loaded 2-core CPU
def test_geo_app_combined_loader(tmp_path, wild_dm):
    dm = GeoAppDataModule(_scans(tmp_path), wild_dm)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    if isinstance(batch, tuple):  # CombinedLoader yields (batch, batch_idx, dataloader_idx)
        batch = batch[0]
    assert set(batch) == {"geo", "app"}
    _check_geo(batch["geo"])
    assert batch["app"]["albedo"].shape[1:] == (3, 64, 64)
    _check_geo(next(iter(dm.val_dataloader())))


def test_configs_instantiate(tmp_path):
    import hydra
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    cfg_dir = str(Path(__file__).resolve().parents[2] / "configs" / "data")
    units = {"disp_scale_mm": 0.5, "patch_size": 64, "regions": ["forehead"], "map_resolution": 128,
             "log_input": True}
    for name in ("geo_app", "scans"):  # one shape: data.scans.* and data.wild.*; `scans` leaves the wild stream off
        with initialize_config_dir(config_dir=cfg_dir, version_base="1.3"):
            data = compose(name)
        root = OmegaConf.create({"paths": {"data_dir": str(tmp_path), "shared_data_dir": str(tmp_path / "none"),
                                           "assets_dir": None}, "units": units, "data": data})
        dm = hydra.utils.instantiate(root.data)
        assert isinstance(dm, GeoAppDataModule) and isinstance(dm.wild, WildDataModule if name == "geo_app" else
                                                                type(None))
        # the units reach the stream that reads them
        assert dm.scans.data_dir == tmp_path / "scans" and dm.scans.hparams.patch_size == 64
        assert dm.scans.hparams.disp_scale_mm == 0.5 and dm.scans.hparams.generator["resolution"] == 128
        assert dm.scans.regions == ["forehead"]
        assert dm.scans.channels == "logv"
        if dm.wild is not None:
            assert dm.wild.hparams.log_input is True


def test_rot90_turns_patches_and_swaps_texel_sizes(tmp_path):
    from fds.data.scans import _geometry_item

    plain = _scans(tmp_path, train_patches_per_epoch=24, hflip=False)
    plain.setup("fit")
    turned = _scans(tmp_path, train_patches_per_epoch=24, hflip=False, rot90=True)
    turned.setup("fit")
    torch.manual_seed(0)
    wide = [bool(it["texel_mm"][0] > it["texel_mm"][1]) for it in (plain.train_set[i] for i in range(24))]
    torch.manual_seed(0)
    items = [turned.train_set[i] for i in range(24)]
    # SFM texels are wider along u than v; a quarter turn swaps the two sizes, so both orders occur
    assert len(set(wide)) == 1
    assert len({bool(it["texel_mm"][0] > it["texel_mm"][1]) for it in items}) == 2
    _check_geo(torch.utils.data.default_collate([{k: v for k, v in it.items() if k != "region"} for it in items])
               | {"region": [it["region"] for it in items]})
    # input, GT and mask turn together
    tex, disp, mask, _, _, _ = turned.train_set._maps.get(0)
    args = (tex, disp, mask, 30, 20, 64, "v", 0.5, False)
    a, b = _geometry_item(*args), _geometry_item(*args, quarter_turns=1)
    for key in ("input", "displacement", "mask"):
        assert torch.equal(torch.rot90(a[key], 1, dims=(-2, -1)), b[key])
    assert not torch.equal(a["displacement"], b["displacement"])


def test_flat_line_weight_follows_the_line_through_flips_and_turns():
    from fds.data.scans import _geometry_item

    r, p = 96, 32
    tex = torch.full((3, r, r), 180, dtype=torch.uint8)
    tex[:, :, 40] = 30  # a dark colour-only line down column 40 ...
    marks = torch.zeros((1, r, r), dtype=torch.uint8)
    marks[:, :, 40] = 255  # ... that marks.png covers
    disp, mask = torch.zeros((1, r, r)), torch.ones((1, r, r), dtype=torch.bool)
    plain = _geometry_item(tex, disp, mask, 10, 30, p, "v", 1.0, False, 0, marks, 3.0, 2)
    w = plain["weight"][0]
    assert torch.equal(w[:, 10], torch.full((p,), 4.0))  # column 40 of the map is column 10 of the patch
    assert (w[:, 8:13] == 4.0).all() and (w[:, :8] == 1.0).all() and (w[:, 13:] == 1.0).all()  # ±2 texels
    for flip, turns in ((True, 0), (False, 1), (True, 3)):
        item = _geometry_item(tex, disp, mask, 10, 30, p, "v", 1.0, flip, turns, marks, 3.0, 2)
        dark = item["input"][0] == item["input"][0].min()
        assert (item["weight"][0][dark] == 4.0).all()  # the weight moves with the input's line
    none = _geometry_item(tex, disp, mask, 10, 30, p, "v", 1.0, False, 0, None, 3.0, 2)
    assert torch.equal(none["weight"], torch.ones_like(none["mask"]))  # samples without marks.png count once
    assert "weight" not in _geometry_item(tex, disp, mask, 10, 30, p, "v", 1.0, False, 0, marks, 0.0)


@pytest.mark.slow
def test_scans_datamodule_trains_on_photo_level_samples(tmp_path):
    photo = {"resolution": 128, "gt_resolution": 128, "albedo_dirs": [], "background_dirs": [],
             "photo": {"face_width_px": [200.0, 240.0], "yaw_deg": 20.0}}
    dm = _scans(tmp_path, kind="photo", photo=photo, num_generate=3, generate_start_seed=3, min_valid=0.3,
                flat_line_weight=4.0)
    dm.prepare_data()
    names = [p.name for p in list_samples(tmp_path / "scans")]
    assert names and all(n.startswith("photo_") for n in names)
    assert all((tmp_path / "scans" / n / "marks.png").is_file() for n in names)
    dm.setup("fit")
    batches = list(dm.train_dataloader())
    _check_geo(batches[0])
    # the colour-only marks the generator painted weigh more in the loss; everything else counts once
    weights = torch.cat([b["weight"] for b in batches])
    assert weights.shape == torch.cat([b["mask"] for b in batches]).shape
    assert weights.min() == 1.0 and weights.max() > 1.0 and weights.max() <= 5.0
    assert (weights == 1.0).float().mean() > 0.5
    # a procedural data module on the same folder does not mistake the photo samples for its own
    proc = _scans(tmp_path, generate_if_empty=False)
    with pytest.raises(FileNotFoundError, match="procedural"):
        proc.prepare_data()


def test_the_split_follows_folder_names_not_their_number():
    from fds.data.datamodules import split_folders

    names = [Path(f"photo_{i:06d}") for i in range(1700, 2030)]
    train, val = split_folders(names, 0.1)
    assert len(val) == 33 and sorted(train + val) == names and not set(train) & set(val)
    # two samples more (generation still writing when a run started): the split is the same but for the margin
    train2, val2 = split_folders(names + [Path("photo_002030"), Path("photo_002031")], 0.1)
    assert len(val2) == 34 and len(set(val) ^ set(val2)) <= 3
    assert split_folders(names, 0.1, seed=1)[1] != val  # the seed chooses another split
    assert split_folders(names[:2], 0.5) == ([names[0]], [names[1]]) or split_folders(names[:2], 0.5) == (
        [names[1]], [names[0]])  # one of each, whatever the fraction
    assert split_folders(names[:2], 0.01)[1] and split_folders(names[:2], 0.99)[0]


@pytest.mark.slow  # prepares the wild photos once more if the fixture has not yet
def test_wild_patches_carry_the_stored_photo_scale_in_both_scale_modes(wild_dm):
    """The wild stream's scale channel is the fit's map stored by prepare_wild, the same after V alone and after
    V and the cue (the same draw gives the same patch)."""
    import numpy as np

    from fds.data.wild import WildPatches

    wild_dm.hparams.max_photos = None  # as the test above: the library photos beside the broken one
    wild_dm.setup("fit")
    files = wild_dm.train_set.files
    items = {}
    for channels in ("v_scale", "v_cue_scale"):
        ds = WildPatches(files, channels=channels, patch_size=64, num_patches=2, min_visible=0.3)
        torch.manual_seed(0)
        items[channels] = ds[0]
    assert items["v_scale"]["input"].shape == (2, 64, 64) and items["v_cue_scale"]["input"].shape == (4, 64, 64)
    torch.testing.assert_close(items["v_scale"]["input"][1], items["v_cue_scale"]["input"][3])
    stored = np.concatenate([np.load(f)["photo_scale"].ravel() for f in files]).astype(np.float32)
    got = items["v_scale"]["input"][1].numpy().ravel()
    assert np.isin(got, stored).all()  # every value is a texel of a stored map (float16 → float32 exactly)
