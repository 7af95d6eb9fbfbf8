"""Weights-only DFDN checkpoints for inference: a ``.safetensors`` file that describes itself.

The file holds the inference generator's tensors (the EMA copy when training kept one) and, in its string
metadata, everything needed to rebuild the network without unpickling anything:

- ``fds_format`` = ``"dfdn-generator"``, ``fds_version`` = ``"1"``;
- ``model_config``: the Hydra ``model`` node (YAML) the weights were trained with;
- ``disp_scale_mm`` (mm per network unit), ``patch_size`` (texels), ``map_resolution`` (UV map side the
  network was trained at, texels), ``channels`` (``v`` or ``rgb``), ``face_model`` (whose UV chart the maps
  live in), ``regions``.

``python -m fds.models.checkpoint RUN/checkpoints/last.ckpt OUT.safetensors`` exports one from a training run
(the run's ``.hydra/config.yaml`` supplies the configs; the Lightning file is read with ``weights_only=True``).
"""

from __future__ import annotations

import argparse
import io
import json
import os
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from fds.fileio import atomic_write_bytes

FORMAT, VERSION = "dfdn-generator", "1"


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable or does not fit the network it describes."""


def _inference_state(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The generator's tensors from a ``DFDNModule`` state dict (EMA copy preferred), keys without prefix."""
    for prefix in ("generator_ema.", "generator."):
        sub = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
        if sub:
            return sub
    raise CheckpointError("the state dict holds no 'generator.' tensors: is this a DFDN checkpoint?")


def save_detail_checkpoint(
    path: str | os.PathLike,
    state_dict: dict[str, torch.Tensor],
    model_cfg: DictConfig | dict,
    *,
    map_resolution: int,
    channels: str = "v",
    face_model: str = "sfm",
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write the inference generator of a ``DFDNModule`` state dict as a self-describing safetensors file."""
    from safetensors.torch import save

    cfg = OmegaConf.create(OmegaConf.to_container(OmegaConf.create(model_cfg), resolve=True))
    # the PCA basis travels in the tensors: rebuilding must not need the artifact file it was loaded from
    cfg.generator.model.basis.source = None
    # the exported tensors already are the EMA weights when training kept them: rebuild without an EMA copy,
    # or predict_step would run the fresh copy instead of the loaded weights
    if "ema_decay" in cfg:
        cfg.ema_decay = None
    # the weights are in this file: rebuilding must not reach for the file a fine-tuning run started from
    if "init_weights" in cfg:
        cfg.init_weights = None
    if "bases" in cfg.generator:
        cfg.generator.bases = None
    tensors = {k: v.detach().cpu().contiguous() for k, v in _inference_state(state_dict).items()}
    meta = {
        "fds_format": FORMAT,
        "fds_version": VERSION,
        "model_config": OmegaConf.to_yaml(cfg),
        "disp_scale_mm": str(float(cfg.disp_scale_mm)),
        "patch_size": str(int(cfg.generator.model.basis.patch_size)),
        "map_resolution": str(int(map_resolution)),
        "channels": channels,
        "face_model": face_model,
        "regions": json.dumps(list(cfg.generator.regions)),
        **{k: str(v) for k, v in (extra or {}).items()},
    }
    out = Path(path)
    atomic_write_bytes(out, [save(tensors, metadata=meta)])
    return out


def read_detail_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors, metadata) of a checkpoint written by :func:`save_detail_checkpoint`; never unpickles."""
    from safetensors import safe_open

    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"checkpoint {p} does not exist: pass ckpt=<file.safetensors> (see README, 'Inference')")
    try:
        with safe_open(str(p), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:  # safetensors raises several types for truncated or foreign files
        raise CheckpointError(f"checkpoint {p} is not a readable safetensors file ({exc}); re-download or "
                              "re-export it with `python -m fds.models.checkpoint`") from exc
    if meta.get("fds_format") != FORMAT:
        raise CheckpointError(f"checkpoint {p} is not an fds DFDN generator (fds_format={meta.get('fds_format')!r})")
    if meta.get("fds_version") != VERSION:
        raise CheckpointError(f"checkpoint {p} has format version {meta.get('fds_version')}, this fds reads {VERSION}")
    return tensors, meta


def load_detail_module(path: str | os.PathLike, device: str | torch.device = "cpu"):
    """A ``DFDNModule`` in eval mode with the checkpoint's generator weights (the same module training uses;
    inference goes through its ``predict_step``). Its ``fds_meta`` attribute holds the checkpoint metadata."""
    tensors, meta = read_detail_checkpoint(path)
    cfg = OmegaConf.create(meta["model_config"])
    module = instantiate(cfg)
    try:
        module.generator.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"checkpoint {path} does not fit the network its config describes: {exc}") from exc
    module.fds_meta = meta
    return module.to(device).eval()


def export_training_checkpoint(
    ckpt: str | os.PathLike, out: str | os.PathLike, run_dir: str | os.PathLike | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Lightning checkpoint of a training run → weights-only safetensors (configs from the run's ``.hydra``)."""
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
    resolution = int(OmegaConf.select(cfg, "data.scans.generator.resolution", default=0)
                     or OmegaConf.select(cfg, "data.generator.resolution", default=1024))
    rgb = OmegaConf.select(cfg, "data.scans.rgb", default=None)
    channels = "rgb" if (OmegaConf.select(cfg, "data.rgb", default=False) if rgb is None else rgb) else "v"
    face_model = str(OmegaConf.select(cfg, "data.scans.generator.face_model", default=None)
                     or OmegaConf.select(cfg, "data.generator.face_model", default="sfm"))
    model_cfg = OmegaConf.to_container(cfg.model, resolve=True)  # resolved against the whole run config
    return save_detail_checkpoint(out, state, model_cfg, map_resolution=resolution, channels=channels,
                                  face_model=face_model, extra=extra)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Export a training checkpoint as weights-only safetensors")
    parser.add_argument("ckpt", help="RUN/checkpoints/<name>.ckpt")
    parser.add_argument("out", help="output .safetensors")
    parser.add_argument("--run-dir", default=None, help="the Hydra run folder (default: two levels above ckpt)")
    args = parser.parse_args(argv)
    print(export_training_checkpoint(args.ckpt, args.out, args.run_dir))


if __name__ == "__main__":
    main()
