"""Weights-only DFDN checkpoints for inference: a ``.safetensors`` file that describes itself, read as data.

The file holds the inference generator's tensors (the EMA copy when training kept one) and string metadata,
parsed once into a frozen :class:`CheckpointMeta`:

- ``fds_format`` = ``"dfdn-generator"``, ``fds_version`` = ``"1"``;
- ``model_config``: the Hydra ``model`` node (YAML) the weights were trained with, validated against fds's
  own network registry (:mod:`fds.models.architecture`): its ``_target_`` tags only select among fds classes;
- ``disp_scale_mm`` (mm per network unit), ``patch_size`` (texels), ``map_resolution`` (UV map side the
  network was trained at, texels), ``channels`` (``v``, ``logv``, ``rgb``, ``v_cue``, ``v_cue_scale`` or ``v_scale``:
  :func:`fds.data.patches.preprocess`),
  ``face_model`` (whose UV chart the maps live in), ``regions`` (JSON list);
- optionally ``photo_scale_range`` (JSON ``[low, high]``, scale-reading channels only): the median photo scales of
  the faces the network was trained on, log2 px per texel at ``map_resolution`` (:mod:`fds.data.scale_range`);
  inference warns outside it.

Any other key, a missing key, a wrong type or an out-of-range value is a :class:`CheckpointError` naming the file
and the key. Nothing is unpickled, imported or called because a file says so.

``python -m fds.models.checkpoint RUN/checkpoints/last.ckpt OUT.safetensors`` exports one from a training run
(the run's ``.hydra/config.yaml`` supplies the configs; the Lightning file is read with ``weights_only=True``).
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast, get_args

import torch
import yaml
from omegaconf import DictConfig, ListConfig, OmegaConf

from fds.data.patches import Channels, channels_of, in_channels, needs_scale
from fds.fileio import atomic_write_bytes
from fds.models.architecture import DFDNSpec, SchemaError, region_names
from fds.models.widen import unet_level_widths, unet_prefixes, widen_unets

log = logging.getLogger(__name__)

FORMAT, VERSION = "dfdn-generator", "1"
FACE_MODELS = ("sfm", "ict", "bfm2017")  # fds.facemodel.FACE_MODELS (not imported: it pulls in eos)
LOW_SCALE, HIGH_SCALE = -6.0, 3.0  # fds.proxy.photo_scale.LOW / HIGH, the photo scale map's clip (log2 px per texel)
METADATA_KEYS = ("fds_format", "fds_version", "model_config", "disp_scale_mm", "patch_size", "map_resolution",
                 "channels", "face_model", "regions")
OPTIONAL_KEYS = ("photo_scale_range",)
_INT_TEXT = re.compile(r"[0-9]{1,6}")
_FLOAT_TEXT = re.compile(r"[0-9]{1,6}(\.[0-9]{1,20})?(e[-+]?[0-9]{1,3})?")


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable, not described by a valid schema, or does not fit its network."""


@dataclass(frozen=True)
class CheckpointMeta:
    """The parsed, validated metadata of a DFDN checkpoint: everything needed to rebuild and use its network."""

    disp_scale_mm: float  # mm per network unit: displacement_mm = d · disp_scale_mm, d in [-1, 1]
    patch_size: int  # side of the network's input patches, texels
    map_resolution: int  # UV map side the network was trained at, texels (power of two ≥ patch_size)
    channels: Channels  # input: V (1), log V (1), RGB (3), V + cue (3), + photo scale (4), V + scale (2); patches
    face_model: str  # whose UV chart the maps live in ("sfm", "ict", "bfm2017")
    regions: tuple[str, ...]  # UV patch zones the networks serve (fds.facemodel.uvchart)
    architecture: DFDNSpec  # the networks and training hyper-parameters (fds.models.architecture)
    # (low, high) median photo scale of the training faces, log2 px per texel at map_resolution; None: not stored
    photo_scale_range: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        a = self.architecture
        rng = self.photo_scale_range
        checks = [
            ("disp_scale_mm", self.disp_scale_mm == a.disp_scale_mm,
             f"{self.disp_scale_mm} ≠ model_config.disp_scale_mm {a.disp_scale_mm}"),
            ("patch_size", self.patch_size == a.patch_size,
             f"{self.patch_size} ≠ the network's basis patch size {a.patch_size}"),
            ("map_resolution", self.map_resolution >= self.patch_size,
             f"{self.map_resolution} < patch_size {self.patch_size}"),
            ("channels", self.channels in get_args(Channels) and a.in_channels == in_channels(self.channels),
             f"{self.channels!r} does not match the network's {a.in_channels} input channel(s) (v, logv: 1; "
             "v_scale: 2; rgb, v_cue: 3; v_cue_scale, y_cue_scale: 4)"),
            ("face_model", self.face_model in FACE_MODELS, f"{self.face_model!r} is not one of {FACE_MODELS}"),
            ("regions", self.regions == a.generator.regions,
             f"{list(self.regions)} ≠ model_config.generator.regions {list(a.generator.regions)}"),
            ("photo_scale_range", rng is None or (needs_scale(self.channels) and len(rng) == 2
                                                  and LOW_SCALE <= rng[0] <= rng[1] <= HIGH_SCALE),
             f"{rng} must be [low, high] with {LOW_SCALE} ≤ low ≤ high ≤ {HIGH_SCALE}, and only for channels "
             "that read the photo scale"),
        ]
        for key, ok, problem in checks:
            if not ok:
                raise SchemaError(key, problem)

    @property
    def in_channels(self) -> int:
        return self.architecture.in_channels

    def trained_photo_scales(self) -> tuple[float, float] | None:
        """The photo scales the network was trained on (log2 px per texel at ``map_resolution``): the stored
        range, else (a scale-reading checkpoint exported without one, like the shipped default)
        :data:`fds.proxy.photo_scale.TRAINED_RANGE`; None for networks that do not read the scale."""
        if not needs_scale(self.channels):
            return None
        if self.photo_scale_range is not None:
            return self.photo_scale_range
        from fds.proxy.photo_scale import TRAINED_RANGE  # measured at 1024² texels

        shift = math.log2(1024 / self.map_resolution)
        return TRAINED_RANGE[0] + shift, TRAINED_RANGE[1] + shift

    @classmethod
    def from_metadata(cls, meta: Mapping[str, str], source: str | os.PathLike = "<metadata>") -> CheckpointMeta:
        """Parse safetensors string metadata; any unknown, missing or invalid key → ``CheckpointError``."""
        try:
            return cls._parse(meta)
        except SchemaError as exc:
            raise CheckpointError(f"checkpoint {source}: metadata {exc}; re-export it with "
                                  "`python -m fds.models.checkpoint` or use a checkpoint fds wrote") from None

    @classmethod
    def _parse(cls, meta: Mapping[str, str]) -> CheckpointMeta:
        for key in meta:
            if key not in METADATA_KEYS + OPTIONAL_KEYS:
                raise SchemaError(repr(key), f"unknown key (known: {', '.join(METADATA_KEYS + OPTIONAL_KEYS)})")
        for key in METADATA_KEYS:
            if key not in meta:
                raise SchemaError(key, "missing")
            if not isinstance(meta[key], str):
                raise SchemaError(key, f"expected a string, got {type(meta[key]).__name__}")
        if meta["fds_format"] != FORMAT:
            raise SchemaError("fds_format", f"{meta['fds_format']!r}: not an fds DFDN generator")
        if meta["fds_version"] != VERSION:
            raise SchemaError("fds_version", f"format version {meta['fds_version']!r}, this fds reads {VERSION}")
        try:
            config = yaml.safe_load(meta["model_config"])  # plain YAML: no tags, no interpolation, no resolvers
        except yaml.YAMLError as exc:
            raise SchemaError("model_config", f"not valid YAML ({str(exc).splitlines()[0]})") from None
        try:
            regions = json.loads(meta["regions"])
        except json.JSONDecodeError:
            raise SchemaError("regions", f"not a JSON list: {meta['regions'][:60]!r}") from None
        return cls(
            disp_scale_mm=_text_float(meta["disp_scale_mm"], "disp_scale_mm"),
            patch_size=_text_int(meta["patch_size"], "patch_size"),
            map_resolution=_text_int(meta["map_resolution"], "map_resolution", pow2=True),
            channels=_channels(meta["channels"]),
            face_model=meta["face_model"],
            regions=region_names(regions, "regions"),
            architecture=DFDNSpec.parse(config, "model_config"),  # type: ignore[arg-type]
            photo_scale_range=_scale_range(meta["photo_scale_range"]) if "photo_scale_range" in meta else None,
        )

    def to_metadata(self) -> dict[str, str]:
        """The safetensors string metadata that :meth:`from_metadata` reads back to an equal object."""
        return {
            "fds_format": FORMAT,
            "fds_version": VERSION,
            "model_config": yaml.safe_dump(self.architecture.to_config(), sort_keys=False),
            "disp_scale_mm": repr(float(self.disp_scale_mm)),
            "patch_size": str(int(self.patch_size)),
            "map_resolution": str(int(self.map_resolution)),
            "channels": self.channels,
            "face_model": self.face_model,
            "regions": json.dumps(list(self.regions)),
        } | ({} if self.photo_scale_range is None else {"photo_scale_range": json.dumps(list(self.photo_scale_range))})


def _scale_range(text: str) -> tuple[float, float]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        raise SchemaError("photo_scale_range", f"not a JSON list: {text[:60]!r}") from None
    if not (isinstance(value, list) and len(value) == 2
            and all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in value)):
        raise SchemaError("photo_scale_range", f"expected [low, high] finite numbers, got {text[:60]!r}")
    return float(value[0]), float(value[1])


def _channels(value: str) -> Channels:
    for mode in get_args(Channels):
        if value == mode:
            return mode
    raise SchemaError("channels", f"expected one of {list(get_args(Channels))}, got {value[:60]!r}")


def _text_int(text: str, key: str, pow2: bool = False) -> int:
    v = int(text) if _INT_TEXT.fullmatch(text) else 0
    if not 1 <= v <= 16384 or (pow2 and v & (v - 1)):
        kind = "a power of two" if pow2 else "an integer"
        raise SchemaError(key, f"expected {kind} in [1, 16384], got {text[:60]!r}")
    return v


def _text_float(text: str, key: str) -> float:
    v = float(text) if _FLOAT_TEXT.fullmatch(text) else 0.0
    if not 0 < v <= 100:
        raise SchemaError(key, f"expected a number of mm in (0, 100], got {text[:60]!r}")
    return v


def _inference_state(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The generator's tensors from a ``DFDNModule`` state dict (EMA copy preferred), keys without prefix."""
    for prefix in ("generator_ema.", "generator."):
        sub = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
        if sub:
            return sub
    raise CheckpointError("the state dict holds no 'generator.' tensors: is this a DFDN checkpoint?")


def _check_fits(meta: CheckpointMeta, tensors: Mapping[str, torch.Tensor], source: str | os.PathLike) -> None:
    """The tensors have exactly the names and shapes of the generator ``meta`` describes (checked on the meta
    device: nothing is allocated for a network the file does not actually hold)."""
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in meta.architecture.generator.build().state_dict().items()}
    got = {k: tuple(v.shape) for k, v in tensors.items()}
    missing, unexpected = sorted(set(expected) - set(got)), sorted(set(got) - set(expected))
    wrong = sorted(k for k in set(expected) & set(got) if expected[k] != got[k])
    if missing or unexpected or wrong:
        parts = [f"{name} {', '.join(keys[:3])}{' …' if len(keys) > 3 else ''}"
                 for name, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)) if keys]
        raise CheckpointError(f"checkpoint {source} does not fit the network its metadata describes: "
                              + "; ".join(parts))


def save_detail_checkpoint(
    path: str | os.PathLike,
    state_dict: dict[str, torch.Tensor],
    model_cfg: DictConfig | dict,
    *,
    map_resolution: int,
    channels: Channels = "v",
    face_model: str = "sfm",
    photo_scale_range: tuple[float, float] | None = None,
) -> Path:
    """Write the inference generator of a ``DFDNModule`` state dict as a self-describing safetensors file.

    ``model_cfg`` is the Hydra ``model`` node of the run; it must describe fds networks the schema knows.
    ``photo_scale_range``: the training faces' photo scales (:attr:`CheckpointMeta.photo_scale_range`)."""
    from safetensors.torch import save

    # resolved where it stands: a node of a whole config reads ${units.*} from its root
    node = model_cfg if OmegaConf.is_config(model_cfg) else OmegaConf.create(model_cfg)
    cfg = cast(dict, OmegaConf.to_container(node, resolve=True))
    # the PCA basis travels in the tensors: rebuilding must not need the artifact file it was loaded from
    cfg["generator"]["model"]["basis"]["source"] = None
    # the exported tensors already are the EMA weights when training kept them: rebuild without an EMA copy,
    # or predict_step would run the fresh copy instead of the loaded weights
    cfg["ema_decay"] = None
    # the weights are in this file: rebuilding must not reach for the file a fine-tuning run started from (run
    # configs before init_weights moved to the top level had it in the model node)
    cfg.pop("init_weights", None)
    cfg["generator"]["bases"] = None
    try:
        arch = cast(DFDNSpec, DFDNSpec.parse(cfg, "model"))
        meta = CheckpointMeta(disp_scale_mm=arch.disp_scale_mm, patch_size=arch.patch_size,
                              map_resolution=int(map_resolution), channels=channels, face_model=face_model,
                              regions=arch.generator.regions, architecture=arch,
                              photo_scale_range=photo_scale_range)
    except SchemaError as exc:
        raise CheckpointError(f"cannot export {path}: {exc}") from None
    tensors = {k: v.detach().cpu().contiguous() for k, v in _inference_state(state_dict).items()}
    _check_fits(meta, tensors, path)
    out = Path(path)
    atomic_write_bytes(out, [save(tensors, metadata=meta.to_metadata())])
    return out


def read_detail_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], CheckpointMeta]:
    """(tensors, parsed metadata) of a checkpoint written by :func:`save_detail_checkpoint`; never unpickles.

    The metadata is validated before any tensor is read, the tensors against the network it describes."""
    from safetensors import safe_open

    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"checkpoint {p} does not exist: pass ckpt=<file.safetensors> (see README, 'Inference')")
    try:
        with safe_open(str(p), framework="pt") as f:
            raw = f.metadata() or {}
            meta = CheckpointMeta.from_metadata(raw, p) if raw.get("fds_format") == FORMAT else None
            tensors = {k: f.get_tensor(k) for k in f.keys()} if meta is not None else {}
    except CheckpointError:
        raise
    except Exception as exc:  # safetensors raises several types for truncated or foreign files
        raise CheckpointError(f"checkpoint {p} is not a readable safetensors file ({exc}); re-download or "
                              "re-export it with `python -m fds.models.checkpoint`") from exc
    if meta is None:
        raise CheckpointError(f"checkpoint {p} is not an fds DFDN generator (fds_format={raw.get('fds_format')!r})")
    _check_fits(meta, tensors, p)
    return tensors, meta


def build_detail_module(meta: CheckpointMeta, device: str | torch.device = "cpu"):
    """A fresh (untrained) ``DFDNModule`` of the network ``meta`` describes, in eval mode, carrying ``meta``."""
    module: Any = meta.architecture.build()
    module.meta = meta
    return module.to(device).eval()


def load_detail_module(path: str | os.PathLike, device: str | torch.device = "cpu"):
    """A ``DFDNModule`` in eval mode with the checkpoint's generator weights (the same module training uses;
    inference goes through its ``predict_step``). Its ``meta`` attribute is the parsed :class:`CheckpointMeta`."""
    tensors, meta = read_detail_checkpoint(path)
    module = build_detail_module(meta)
    try:
        module.generator.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"checkpoint {path} does not fit the network its metadata describes: {exc}") from exc
    return module.to(device).eval()


def widen_input_channels(tensors: Mapping[str, torch.Tensor], shapes: Mapping[str, tuple[int, ...]],
                         source: str | os.PathLike = "the checkpoint") -> dict[str, torch.Tensor]:
    """A generator's tensors reshaped for the same network reading more input channels: V → RGB, V → V + the
    shading cue, V → V + photo scale, V or V + cue → V + cue + photo scale. Every conv that reads the image gets
    the new channels, which start at 0. The image is always the *last* input (PDIM reads it alone, PDRM reads
    ``[coarse, image]``, the head reads PDIM's output) and new channels are appended after the old ones
    (``fds.data.patches``), so the widened network starts as the narrower one exactly for the cue and scale; for
    RGB the V weights read R, which on skin is V = max(R, G, B). Training learns what the new channels add. Any
    other difference of shape is a :class:`CheckpointError` naming ``source``."""
    out = dict(tensors)
    for key, t in tensors.items():
        want = shapes.get(key)
        if want is None or tuple(t.shape) == tuple(want):
            continue
        if t.dim() != 4 or len(want) != 4 or want[0] != t.shape[0] or want[2:] != tuple(t.shape[2:]) \
                or not 0 < want[1] - t.shape[1] <= 3:
            raise CheckpointError(f"init_weights {source} does not fit this run's generator: {key} has shape "
                                  f"{tuple(t.shape)}, the run's {want} (only widening the input by 1–3 channels, "
                                  "V → RGB, V + cue, V + scale or V + cue + scale, is supported)")
        wide = t.new_zeros(want)
        wide[:, : t.shape[1]] = t  # the old inputs keep their weights; the new channels start at 0
        out[key] = wide
    return out


def load_start_weights(module, path: str | os.PathLike, luma: bool | None = None) -> None:
    """Start a ``DFDNModule`` (fine-tuning) from a checkpoint's generator weights: its generator and, when it keeps
    one, its EMA copy get them; optimizer state and the discriminator stay fresh (``ckpt_path`` resumes a run
    instead). The file is read through the schema like any checkpoint; its ``disp_scale_mm`` must be the run's.
    A V or V + cue checkpoint also starts a run reading more channels (:func:`widen_input_channels`), a narrower
    one a run with wider U-Nets (:func:`fds.models.widen.widen_unets`: the same function at the first step), and
    one without the full-resolution branch a run with it (:mod:`fds.models.fine`: zero at the first step).
    ``luma``: whether the run reads luma in V's place (``units.luma``); a checkpoint that read the other starts it
    as it is, and a warning says so (the two channels agree on grey pixels, not on skin)."""
    tensors, meta = read_detail_checkpoint(path)  # validated metadata; never unpickles or instantiates
    if luma is not None and meta.channels.startswith("y_") != bool(luma):
        was, now = ("luma", "V") if meta.channels.startswith("y_") else ("V", "luma")
        log.warning("init_weights %s was trained reading %s (channels %s); this run reads %s and starts from those "
                    "weights as they are", path, was, meta.channels, now)
    scale = float(module.hparams.disp_scale_mm)
    if meta.disp_scale_mm != scale:
        raise CheckpointError(f"init_weights {path} was trained at disp_scale_mm={meta.disp_scale_mm} but this run "
                              f"uses {scale}: set units.disp_scale_mm={meta.disp_scale_mm}")
    targets = [module.generator] + ([module.generator_ema] if module.generator_ema is not None else [])
    own = module.generator.state_dict()
    if any(unet_level_widths(own, p) != unet_level_widths(tensors, p) for p in unet_prefixes(tensors)):
        try:
            tensors = widen_unets(tensors, own)
        except ValueError as exc:
            raise CheckpointError(f"init_weights {path} does not fit this run's generator: {exc}") from None
    if meta.channels in ("v", "v_cue") and any(own[k].shape != t.shape for k, t in tensors.items() if k in own):
        tensors = widen_input_channels(tensors, {k: tuple(v.shape) for k, v in own.items()}, path)
    fresh = [k for k in own if k not in tensors and ".fine." in k]
    if fresh:  # a run that adds the full-resolution branch: it starts at zero, so the run starts as the checkpoint
        log.info("init_weights %s has no fine branch; this run's starts as a zero correction", path)
        tensors = {**tensors, **{k: own[k] for k in fresh}}
    for target in targets:
        try:
            target.load_state_dict(tensors, strict=True)
        except RuntimeError as exc:
            raise CheckpointError(f"init_weights {path} does not fit this run's generator (model config "
                                  f"differs?): {exc}") from exc


def training_photo_scales(cfg: DictConfig | ListConfig, resolution: int, log=print) -> tuple[float, float] | None:
    """The photo scales a run's network was trained on (log2 px per texel at ``resolution``): those of the
    photo-level samples in its ``data.scans.data_dir`` (:mod:`fds.data.scale_range`), widened by the range its
    ``init_weights`` checkpoint was trained on (:meth:`CheckpointMeta.trained_photo_scales`), since a fine-tune
    keeps what its start learnt. None when neither is known. ``log``: progress lines."""
    from fds.data.scale_range import sample_photo_scales, scale_range
    from fds.data.scans import list_samples

    ranges: list[tuple[float, float] | None] = []
    data_dir = OmegaConf.select(cfg, "data.scans.data_dir", default=None)
    if OmegaConf.select(cfg, "data.scans.kind", default=None) == "photo" and data_dir and Path(data_dir).is_dir():
        folders = list_samples(data_dir)
        if folders:
            log(f"photo scales of the {len(folders)} training samples in {data_dir} (~0.2 s each)")
            scales = sample_photo_scales(folders, resolution, str(cfg.data.scans.generator.face_model))
            ranges.append((float(scales.min()), float(scales.max())))
    init = OmegaConf.select(cfg, "init_weights", default=None)
    if init and Path(init).is_file():
        start = read_detail_checkpoint(init)[1]
        shift = math.log2(start.map_resolution / resolution)  # its range is at its own texel density
        rng = start.trained_photo_scales()
        ranges.append(None if rng is None else (rng[0] + shift, rng[1] + shift))
    return scale_range(*ranges)


def export_training_checkpoint(
    ckpt: str | os.PathLike, out: str | os.PathLike, run_dir: str | os.PathLike | None = None,
    photo_scale_range: tuple[float, float] | None = None, log=print,
) -> Path:
    """Lightning checkpoint of a training run → weights-only safetensors (configs from the run's ``.hydra``).

    A network that reads the photo scale stores the range it was trained on: ``photo_scale_range`` when given,
    else :func:`training_photo_scales` of the run (nothing stored when the run's data are gone)."""
    ckpt = Path(ckpt)
    run = Path(run_dir) if run_dir else ckpt.parent.parent
    cfg_path = run / ".hydra" / "config.yaml"
    if not cfg_path.is_file():
        raise CheckpointError(f"{cfg_path} not found: pass run_dir= the Hydra run folder that wrote {ckpt}")
    cfg = OmegaConf.load(cfg_path)
    try:
        state = torch.load(io.BytesIO(ckpt.read_bytes()), map_location="cpu", weights_only=True)["state_dict"]
    except Exception as exc:
        raise CheckpointError(f"{ckpt} is not a loadable Lightning checkpoint ({exc})") from exc
    if OmegaConf.select(cfg, "units") is None:
        raise CheckpointError(f"{cfg_path} has no `units` block (a run of an older fds): add one as in "
                              "configs/units/default.yaml with the run's map_resolution, then export again")
    resolution = int(cfg.units.map_resolution)
    channels = channels_of(bool(cfg.data.scans.rgb), bool(OmegaConf.select(cfg, "data.scans.log_input", default=False)),
                           bool(OmegaConf.select(cfg, "data.scans.shading_cue", default=False)),
                           bool(OmegaConf.select(cfg, "data.scans.photo_scale", default=False)),
                           bool(OmegaConf.select(cfg, "data.scans.luma", default=False)))
    face_model = str(cfg.data.scans.generator.face_model)
    model_cfg = cast(dict, OmegaConf.to_container(cfg.model, resolve=True))  # resolved against the whole run config
    if needs_scale(channels) and photo_scale_range is None:
        photo_scale_range = training_photo_scales(cfg, resolution, log)
        if photo_scale_range is None:
            log(f"{cfg_path}: no training samples or start checkpoint found; the checkpoint stores no photo scale "
                "range and inference will use fds.proxy.photo_scale.TRAINED_RANGE")
    return save_detail_checkpoint(out, state, model_cfg, map_resolution=resolution, channels=channels,
                                  face_model=face_model, photo_scale_range=photo_scale_range)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Export a training checkpoint as weights-only safetensors")
    parser.add_argument("ckpt", help="RUN/checkpoints/<name>.ckpt")
    parser.add_argument("out", help="output .safetensors")
    parser.add_argument("--run-dir", default=None, help="the Hydra run folder (default: two levels above ckpt)")
    parser.add_argument("--photo-scale-range", nargs=2, type=float, metavar=("LOW", "HIGH"), default=None,
                        help="photo scales the network was trained on (log2 px per texel at the run's map "
                             "resolution; default: measured on the run's training samples)")
    args = parser.parse_args(argv)
    rng = tuple(args.photo_scale_range) if args.photo_scale_range else None
    print(export_training_checkpoint(args.ckpt, args.out, args.run_dir, rng))


if __name__ == "__main__":
    main()
