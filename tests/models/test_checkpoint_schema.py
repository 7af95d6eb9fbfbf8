"""Checkpoints are data: crafted metadata is rejected by the schema and nothing in it is ever executed."""

from __future__ import annotations

import copy
import inspect
import json
from pathlib import Path

import pytest
import torch
import yaml
from hydra.utils import instantiate
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file

from fds.models.architecture import REGISTRY, DFDNSpec
from fds.models.checkpoint import (
    CheckpointError,
    CheckpointMeta,
    load_detail_module,
    load_start_weights,
    read_detail_checkpoint,
    save_detail_checkpoint,
)
from fds.models.module import DFDNModule

ROOT = Path(__file__).resolve().parents[2]
# shipped file → its input channels: the default reads luma, the shading cue and the photo scale; its predecessors V
SHIPPED = {ROOT / "checkpoints" / name: channels for name, channels in (
    ("dfdn_lite.safetensors", "y_cue_scale"), ("dfdn_lite_v.safetensors", "v"), ("dfdn_lite_uv.safetensors", "v"),
    ("dfdn_lite_geo.safetensors", "v"))}

TINY = {
    "_target_": "fds.models.module.DFDNModule", "disp_scale_mm": 0.5, "gan_weight": 0.0,
    "generator": {"_target_": "fds.models.generator.RegionModels", "regions": ["forehead", "mouth"], "shared": True,
                  "model": {"_target_": "fds.models.generator.DetailGenerator",
                            "pdim": {"_target_": "fds.models.unet.UNet", "in_channels": 1, "out_channels": 1,
                                     "num_downs": 3, "ngf": 4, "max_mult": 2},
                            "head": {"_target_": "fds.models.heads.ConvPoolHead", "in_channels": 1, "channels": [4],
                                     "grid": 1, "k": 4},
                            "basis": {"_target_": "fds.models.pca.PCABasis", "k": 4, "patch_size": 16,
                                      "unit_rms": True},
                            "pdrm": {"_target_": "fds.models.unet.UNet", "in_channels": 2, "out_channels": 1,
                                     "num_downs": 2, "ngf": 4, "max_mult": 2}}},
    "discriminator": {"_target_": "fds.models.generator.RegionModels", "regions": ["forehead", "mouth"],
                      "shared": True, "model": {"_target_": "fds.models.discriminator.PatchDiscriminator",
                                                "in_channels": 2, "ndf": 4, "n_layers": 1}},
    "optimizer": {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 2e-4, "betas": [0.5, 0.999]},
}


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors, metadata) of a valid tiny checkpoint that fds wrote."""
    torch.manual_seed(0)
    module = DFDNSpec.parse(TINY, "model").build()
    path = save_detail_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.safetensors", module.state_dict(), TINY,
                                  map_resolution=64)
    tensors, meta = read_detail_checkpoint(path)
    return tensors, meta.to_metadata()


def _write(path: Path, tensors: dict, metadata: dict[str, str]) -> Path:
    save_file(tensors, str(path), metadata=metadata)
    return path


def _with_config(metadata: dict[str, str], config: dict) -> dict[str, str]:
    return {**metadata, "model_config": yaml.safe_dump(config)}


def test_shipped_checkpoints_parse_and_round_trip():
    for path, channels in SHIPPED.items():
        tensors, meta = read_detail_checkpoint(path)
        assert (meta.disp_scale_mm, meta.patch_size, meta.map_resolution) == (0.5, 256, 1024)
        assert (meta.channels, meta.face_model, meta.regions) == (channels, "sfm", ("forehead", "mouth"))
        assert CheckpointMeta.from_metadata(meta.to_metadata()) == meta
        module = load_detail_module(path)
        assert module.meta == meta and module.generator_ema is None


def test_schema_defaults_are_the_modules():
    """A key an older checkpoint lacks takes DFDNModule's own default, as instantiating it did."""
    spec_fields = {f.name: f.default for f in DFDNSpec.__dataclass_fields__.values()}
    for name, p in inspect.signature(DFDNModule.__init__).parameters.items():
        if name in ("self", "generator", "discriminator", "optimizer", "disp_scale_mm"):
            continue
        assert spec_fields[name] == p.default, name


def test_target_pointing_at_open_empties_nothing(tmp_path, good):
    tensors, metadata = good
    victim, control = tmp_path / "victim.txt", tmp_path / "control.txt"
    victim.write_text("precious")
    control.write_text("precious")
    evil = {"_target_": "builtins.open", "_args_": [str(victim), "w"]}
    # the crafted config is live: instantiating it, as fds did, empties the file it names
    instantiate({**evil, "_args_": [str(control), "w"]}).close()
    assert control.read_text() == ""
    crafted = _write(tmp_path / "open.safetensors", tensors, _with_config(metadata, evil))
    with pytest.raises(CheckpointError, match=r"open\.safetensors.*model_config\._target_"):
        load_detail_module(crafted)
    with pytest.raises(CheckpointError, match="model_config._target_"):
        read_detail_checkpoint(crafted)
    assert victim.read_text() == "precious"


class _Payload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",)


@pytest.mark.parametrize("where", ["pdim", "optimizer", "head"])
def test_target_pointing_at_torch_load_runs_no_pickle(tmp_path, good, where):
    tensors, metadata = good
    payload, marker = tmp_path / "payload.pt", tmp_path / "marker"
    torch.save(_Payload(marker), payload)
    # the payload is live: an unsafe torch.load runs it
    torch.load(payload, weights_only=False)
    assert marker.read_text() == "pwned"
    marker.unlink()
    config = copy.deepcopy(TINY)
    node = {"_target_": "torch.load", "f": str(payload), "weights_only": False}
    if where == "optimizer":
        config["optimizer"] = {**node, "_partial_": True}
    else:
        config["generator"]["model"][where] = node
    crafted = _write(tmp_path / "load.safetensors", tensors, _with_config(metadata, config))
    with pytest.raises(CheckpointError, match=r"load\.safetensors.*_target_"):
        load_detail_module(crafted)
    # fine-tuning (init_weights) reads the file through the same schema
    spec = DFDNSpec.parse(TINY, "model")
    with pytest.raises(CheckpointError, match=r"load\.safetensors.*_target_"):
        load_start_weights(DFDNModule(spec.generator.build(), spec.discriminator.build(), disp_scale_mm=0.5), crafted)
    assert not marker.exists()


def _mutations():
    def meta(key, value):
        return lambda m, c: ({**m, key: value}, c)

    def cfg(path, value):
        def f(m, c):
            node = c
            for k in path[:-1]:
                node = node[k]
            if value is _DELETE:
                del node[path[-1]]
            else:
                node[path[-1]] = value
            return m, c
        return f

    gen = ("generator", "model")
    return {
        "unknown metadata key": (meta("__reduce__", "x"), "'__reduce__': unknown key"),
        "missing metadata key": (lambda m, c: ({k: v for k, v in m.items() if k != "face_model"}, c),
                                 "face_model: missing"),
        "patch_size not an int": (meta("patch_size", "16.0"), "patch_size: expected an integer"),
        "map_resolution not a power of 2": (meta("map_resolution", "1000"), "map_resolution: expected a power"),
        "disp_scale_mm nan": (meta("disp_scale_mm", "nan"), "disp_scale_mm: expected a number"),
        "disp_scale_mm interpolation": (meta("disp_scale_mm", "${oc.env:HOME}"), "disp_scale_mm"),
        "regions not JSON": (meta("regions", "forehead"), "regions: not a JSON list"),
        "regions path-like": (meta("regions", json.dumps(["../x", "mouth"])), r"regions\[0\]"),
        "channels unknown": (meta("channels", "bgr"), "channels"),
        "rgb for a 1-channel network": (meta("channels", "rgb"), r"channels: 'rgb' does not match"),
        "face model unknown": (meta("face_model", "os.system"), "face_model"),
        "format version": (meta("fds_version", "0"), "fds_version"),
        "model_config not YAML": (meta("model_config", "{: ["), "model_config: not valid YAML"),
        "model_config python tag": (meta("model_config", "!!python/object/apply:os.system ['true']"),
                                    "model_config: not valid YAML"),
        "unknown nested key": (cfg((*gen, "pdim", "evil"), 1), r"pdim\.evil: unknown key"),
        "hydra recursive key": (cfg(("generator", "_recursive_"), False), r"generator\._recursive_: unknown key"),
        "missing nested key": (cfg((*gen, "pdim", "ngf"), _DELETE), r"pdim\.ngf: missing"),
        "string for int": (cfg((*gen, "pdim", "ngf"), "4"), r"pdim\.ngf: expected an integer"),
        "bool for int": (cfg((*gen, "pdim", "ngf"), True), r"pdim\.ngf: expected an integer"),
        "huge width": (cfg((*gen, "pdim", "ngf"), 10**9), r"pdim\.ngf: expected an integer in \[1, 512\]"),
        "basis from a file": (cfg((*gen, "basis", "source"), "/etc/passwd"), r"basis\.source: must be null"),
        "init_weights file": (cfg(("init_weights",), "other.safetensors"), r"init_weights: must be null"),
        "inconsistent channels": (cfg((*gen, "pdrm", "in_channels"), 3), r"pdrm: takes \[coarse, input\]"),
        "patch size mismatch": (meta("patch_size", "32"), r"patch_size: 32 ≠"),
        "regions mismatch": (meta("regions", json.dumps(["mouth"])), r"regions: \['mouth'\] ≠"),
        "photo scale range for a V network": (meta("photo_scale_range", "[-2.5, 0.5]"),
                                              "photo_scale_range: .* only for channels that read the photo scale"),
    }


_DELETE = object()
MUTATIONS = _mutations()


@pytest.mark.parametrize("case", list(MUTATIONS))
def test_crafted_metadata_is_rejected_naming_file_and_key(tmp_path, good, case):
    tensors, metadata = good
    mutate, message = MUTATIONS[case]
    config = yaml.safe_load(metadata["model_config"])
    m, c = mutate(dict(metadata), config)
    if c != yaml.safe_load(metadata["model_config"]):
        m = _with_config(m, c)
    crafted = _write(tmp_path / "crafted.safetensors", tensors, m)
    with pytest.raises(CheckpointError, match="crafted.safetensors") as err:
        read_detail_checkpoint(crafted)
    assert err.match(message)


def test_truncated_and_misfit_files_are_rejected(tmp_path, good):
    tensors, metadata = good
    full = _write(tmp_path / "full.safetensors", tensors, metadata).read_bytes()
    for n in (len(full) // 2, 100, 7):
        (tmp_path / "cut.safetensors").write_bytes(full[:n])
        with pytest.raises(CheckpointError, match="cut.safetensors"):
            read_detail_checkpoint(tmp_path / "cut.safetensors")
    # a file whose tensors are not the network it describes is refused before that network is allocated
    tensors2 = dict(tensors)
    tensors2.pop(next(iter(tensors2)))
    tensors2["extra"] = torch.zeros(3)
    with pytest.raises(CheckpointError, match="misfit.safetensors does not fit .*missing .*unexpected extra"):
        read_detail_checkpoint(_write(tmp_path / "misfit.safetensors", tensors2, metadata))


_json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-(2**40), 2**40), st.floats(allow_nan=True),
                       st.text(max_size=12), st.lists(st.integers(-5, 5000), max_size=4))


def _leaf_paths(node, prefix=()):
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _leaf_paths(v, (*prefix, k))
    elif isinstance(node, list):
        yield prefix
    else:
        yield prefix


LEAVES = list(_leaf_paths(TINY))


@settings(max_examples=150, deadline=None)
@given(path=st.sampled_from(LEAVES), value=_json_leaf)
def test_any_config_value_parses_or_is_a_checkpoint_error(path, value):
    """Whatever value one key of model_config takes, the parser answers with a valid meta or a CheckpointError
    naming that key (never another exception); a valid result round-trips."""
    metadata = {"fds_format": "dfdn-generator", "fds_version": "1", "disp_scale_mm": "0.5", "patch_size": "16",
                "map_resolution": "64", "channels": "v", "face_model": "sfm",
                "regions": json.dumps(["forehead", "mouth"])}
    config = copy.deepcopy(TINY)
    node = config
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = value
    try:
        meta = CheckpointMeta.from_metadata({**metadata, "model_config": yaml.safe_dump(config)}, "fuzz.safetensors")
    except CheckpointError as exc:
        assert "fuzz.safetensors" in str(exc)
        return
    assert CheckpointMeta.from_metadata(meta.to_metadata()) == meta


def test_registry_names_only_fds_networks_and_adam():
    assert all(t.startswith("fds.models.") or t in ("torch.optim.Adam", "torch.optim.AdamW") for t in REGISTRY)


@settings(max_examples=150, deadline=None)
@given(key=st.sampled_from(["disp_scale_mm", "patch_size", "map_resolution", "channels", "face_model", "regions",
                            "fds_version", "photo_scale_range", "unknown"]), text=st.text(max_size=24))
def test_any_metadata_text_parses_or_is_a_checkpoint_error(good, key, text):
    metadata = {**good[1], key: text}
    try:
        meta = CheckpointMeta.from_metadata(metadata, "fuzz.safetensors")
    except CheckpointError as exc:
        assert "fuzz.safetensors" in str(exc) and (key in str(exc) or key == "unknown")
        return
    assert key != "unknown" and CheckpointMeta.from_metadata(meta.to_metadata()) == meta


def test_log_input_checkpoint_round_trips(tmp_path, good):
    """A network trained on log-V input (``channels`` = ``logv``, 1 channel like ``v``) says so in its file, and
    the predictor and the data read the same mode back from it."""
    tensors, metadata = good
    path = _write(tmp_path / "logv.safetensors", tensors, {**metadata, "channels": "logv"})
    _, meta = read_detail_checkpoint(path)
    assert meta.channels == "logv" and CheckpointMeta.from_metadata(meta.to_metadata()) == meta
    assert load_detail_module(path).meta.channels == "logv"


def _scale_reading(tmp_path: Path, photo_scale_range=None, map_resolution: int = 64) -> Path:
    """A tiny ``v_scale`` checkpoint (V + photo scale: 2 input channels) storing ``photo_scale_range``."""
    cfg = copy.deepcopy(TINY)
    model = cfg["generator"]["model"]
    model["pdim"]["in_channels"], model["pdrm"]["in_channels"] = 2, 3
    cfg["discriminator"]["model"]["in_channels"] = 3
    module = DFDNSpec.parse(cfg, "model").build()
    return save_detail_checkpoint(tmp_path / "scale.safetensors", module.state_dict(), cfg,
                                  map_resolution=map_resolution, channels="v_scale",
                                  photo_scale_range=photo_scale_range)


def test_photo_scale_range_round_trips_and_bad_ranges_are_named(tmp_path):
    """A scale-reading checkpoint stores the photo scales its training faces spanned; a reversed, non-finite,
    out-of-clip or malformed range is a CheckpointError naming the key, never a silent default."""
    tensors, meta = read_detail_checkpoint(_scale_reading(tmp_path, (-2.5, 0.25)))
    assert meta.photo_scale_range == (-2.5, 0.25) and meta.trained_photo_scales() == (-2.5, 0.25)
    assert CheckpointMeta.from_metadata(meta.to_metadata()) == meta
    for text in ("[0.5, -1]", "[-7, 0]", "[-1, 4]", "[-1, NaN]", "[-1]", "[-1, 0, 1]", '["-1", "0"]', "[true, 1]",
                 "-1, 0", "{}"):
        crafted = _write(tmp_path / "crafted.safetensors", tensors, {**meta.to_metadata(), "photo_scale_range": text})
        with pytest.raises(CheckpointError, match="crafted.safetensors.*photo_scale_range"):
            read_detail_checkpoint(crafted)


def test_a_scale_reading_checkpoint_without_a_range_is_read_with_the_shipped_one(tmp_path):
    """Checkpoints exported before the range was stored (the ninth round) are read with
    :data:`fds.proxy.photo_scale.TRAINED_RANGE`, measured at 1024² texels and moved with the texel density (a texel
    of a 512² map holds twice the photo pixels: +1 log2 unit); networks that do not read the scale have none."""
    from fds.models.checkpoint import HIGH_SCALE, LOW_SCALE
    from fds.proxy.photo_scale import HIGH, LOW, TRAINED_RANGE

    assert (LOW_SCALE, HIGH_SCALE) == (LOW, HIGH)  # the schema's bounds are the scale map's clip
    meta = read_detail_checkpoint(_scale_reading(tmp_path, None, map_resolution=512))[1]
    assert meta.photo_scale_range is None and "photo_scale_range" not in meta.to_metadata()
    assert meta.trained_photo_scales() == pytest.approx((TRAINED_RANGE[0] + 1, TRAINED_RANGE[1] + 1))
    # the default since 2026-12-07 stores the range of its last training photos; its lineage began on the photos of
    # TRAINED_RANGE, and the fresh heads of the same generator reach at least as far
    shipped = read_detail_checkpoint(ROOT / "checkpoints" / "dfdn_lite.safetensors")[1]
    low, high = shipped.trained_photo_scales()
    assert shipped.map_resolution == 1024 and shipped.photo_scale_range == (low, high)
    assert low <= TRAINED_RANGE[0] and high >= TRAINED_RANGE[1]
    assert read_detail_checkpoint(ROOT / "checkpoints" / "dfdn_lite_v.safetensors")[1].trained_photo_scales() is None


def test_discriminator_norm_and_gain_are_checked_and_built():
    """The discriminator's normalisation, detail gain and blur reach the module from a description; an unknown norm
    or a gain ≤ 0 is named by its key, and descriptions without them build the paper's discriminator."""
    from fds.models.architecture import SchemaError
    cfg = copy.deepcopy(TINY)
    cfg["discriminator"]["model"].update(norm="spectral", detail_gain=25.0)
    disc = DFDNSpec.parse(cfg, "model").build().discriminator.models["shared"]
    assert (disc.norm, disc.detail_gain) == ("spectral", 25.0)
    assert DFDNSpec.parse(copy.deepcopy(TINY), "model").build().discriminator.models["shared"].norm == "batch"
    for key, value in (("norm", "instance"), ("detail_gain", 0.0), ("detail_gain", "x"), ("detail_sigma_texels", -1.0)):
        bad = copy.deepcopy(TINY)
        bad["discriminator"]["model"][key] = value
        with pytest.raises(SchemaError, match=f"discriminator.model.{key}"):
            DFDNSpec.parse(bad, "model")
