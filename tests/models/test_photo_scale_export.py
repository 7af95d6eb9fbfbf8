"""A training export stores the photo scales its network was trained on (fds.data.scale_range,
fds.models.checkpoint.training_photo_scales): those of the run's photo-level samples, widened by its start's."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from safetensors.torch import save_file

from fds.data.photo_scans import PhotoScanGenerator, write_photo_samples
from fds.data.scale_range import sample_photo_scales
from fds.data.scans import list_samples
from fds.models.checkpoint import export_training_checkpoint, read_detail_checkpoint

SHIPPED = Path(__file__).resolve().parents[2] / "checkpoints" / "dfdn_lite.safetensors"


def _run(tmp: Path, data_dir: Path, init: Path | None) -> Path:
    """A training run folder as train.py leaves it: the shipped cue + scale network's weights and configs, photo-level
    samples in ``data_dir``, started from ``init``."""
    tensors, meta = read_detail_checkpoint(SHIPPED)
    run = tmp / "run"
    (run / ".hydra").mkdir(parents=True, exist_ok=True)
    (run / "checkpoints").mkdir(exist_ok=True)
    cfg = {"model": meta.architecture.to_config(), "init_weights": None if init is None else str(init),
           "units": {"map_resolution": meta.map_resolution},
           "data": {"scans": {"kind": "photo", "data_dir": str(data_dir), "rgb": False, "shading_cue": True,
                              "photo_scale": True, "generator": {"face_model": "sfm"}}}}
    OmegaConf.save(OmegaConf.create(cfg), run / ".hydra" / "config.yaml")
    torch.save({"state_dict": {f"generator.{k}": v for k, v in tensors.items()}}, run / "checkpoints" / "last.ckpt")
    return run / "checkpoints" / "last.ckpt"


@pytest.mark.slow
def test_export_stores_the_photo_scales_of_its_samples_and_its_start(tmp_path):
    gen = PhotoScanGenerator("sfm", 128, 128, cache_dir=tmp_path / "cache",
                             photo={"face_width_px": [150.0, 1000.0], "yaw_deg": 20.0})
    write_photo_samples(tmp_path / "scans", [3, 4, 5], gen)
    folders = list_samples(tmp_path / "scans")
    assert len(folders) >= 2, "the proxy stage found fewer than two of three rendered faces"
    scales = sample_photo_scales(folders, 1024)
    # faces drawn 150–1000 px wide: sizes differ, and a texel of a 512² map holds 4× the photo pixels (+1 log2)
    assert np.ptp(scales) > 0 and np.allclose(sample_photo_scales(folders, 512), scales + 1, atol=0.05)
    lines: list[str] = []

    # the run's own samples
    out = export_training_checkpoint(_run(tmp_path, tmp_path / "scans", None), tmp_path / "a.safetensors",
                                     log=lines.append)
    assert read_detail_checkpoint(out)[1].photo_scale_range == pytest.approx((scales.min(), scales.max()))
    assert any(f"{len(folders)} training samples" in line for line in lines)

    # a fine-tune keeps what its start learnt: the start's stored range widens the run's
    tensors, meta = read_detail_checkpoint(SHIPPED)
    start = tmp_path / "start.safetensors"
    save_file(tensors, str(start), metadata=dataclasses.replace(
        meta, photo_scale_range=(scales.min() - 1.0, scales.min() - 0.5)).to_metadata())
    out = export_training_checkpoint(_run(tmp_path, tmp_path / "scans", start), tmp_path / "b.safetensors")
    assert read_detail_checkpoint(out)[1].photo_scale_range == pytest.approx((scales.min() - 1.0, scales.max()))

    # nothing known (samples moved away, no start): nothing stored, said so, and inference falls back
    lines.clear()
    out = export_training_checkpoint(_run(tmp_path, tmp_path / "gone", None), tmp_path / "c.safetensors",
                                     log=lines.append)
    assert read_detail_checkpoint(out)[1].photo_scale_range is None and any("TRAINED_RANGE" in x for x in lines)
    # an explicit range wins over any measurement
    out = export_training_checkpoint(_run(tmp_path, tmp_path / "scans", start), tmp_path / "d.safetensors",
                                     photo_scale_range=(-2.0, -1.0))
    assert read_detail_checkpoint(out)[1].photo_scale_range == (-2.0, -1.0)
