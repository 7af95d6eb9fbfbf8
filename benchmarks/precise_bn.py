"""Do a checkpoint's BatchNorm running statistics fit its weights? The recipes export EMA weights with the live
network's running statistics copied in at each step. This recomputes them for the exported weights on training
patches (``torch.optim.swa_utils.update_bn``) and compares both versions on held-out photo-level samples.

    python benchmarks/precise_bn.py TRAIN_DIR HELD_OUT_DIR OUT.safetensors [--ckpt ...] [--batches 64]

TRAIN_DIR: photo-level samples the patches come from, drawn as ``experiment=dfdn_photo_cue_scale`` trains (its
data config: zones, flips, batch size); HELD_OUT_DIR: samples no run trained on. OUT is the recalibrated checkpoint.
Prints per held-out sample and pooled the UV-space r and RMS amplitude ratio of the band-passed detail normals
(``fds.metrics.UV_DETAIL_BAND_TEXELS``) inside the network's zones, on texels the photo sees.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import hydra
import numpy as np
import torch
import yaml
from detail_by_condition import band_normals, scored_texels
from hydra import compose, initialize_config_dir
from safetensors import safe_open
from torch.optim.swa_utils import update_bn

from fds.data.sample_io import list_samples, read_sample
from fds.data.scans import ScanFolder, sample_texel_mm
from fds.detail.predictor import DetailPredictor
from fds.models.checkpoint import load_detail_module, save_detail_checkpoint

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


class _OnBatch(torch.nn.Module):
    """The generator as ``update_bn`` calls a model: one argument, the batch ``{"input", "region"}``."""

    def __init__(self, generator: torch.nn.Module) -> None:
        super().__init__()
        self.generator = generator

    def forward(self, batch: dict) -> torch.Tensor:
        return self.generator(batch["region"], batch["input"]).refined


def recalibrated(ckpt: str, train_dir: Path, out: Path, batches: int) -> Path:
    """Write ``ckpt`` with its BatchNorm statistics recomputed on ``batches`` training batches to ``out``."""
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose("train.yaml", overrides=["experiment=dfdn_photo_cue_scale", f"data.scans.data_dir={train_dir}",
                                               "data.use_wild=false", "data.scans.num_workers=0"])
    data = hydra.utils.instantiate(cfg.data)
    data.setup("fit")
    module = load_detail_module(ckpt)
    it = iter(data.train_dataloader())
    loader = [{"input": b["input"], "region": b.get("region")} for b in (next(it) for _ in range(batches))]
    print(f"recomputing BatchNorm statistics on {sum(len(b['input']) for b in loader)} patches", flush=True)
    with torch.no_grad():
        update_bn(loader, _OnBatch(module.generator))
    module.eval()
    with safe_open(ckpt, framework="pt") as f:
        model_cfg = yaml.safe_load(f.metadata()["model_config"])
    m = module.meta
    return save_detail_checkpoint(out, module.state_dict(), model_cfg, map_resolution=m.map_resolution,
                                  channels=m.channels, face_model=m.face_model,
                                  photo_scale_range=m.photo_scale_range)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("train_dir", type=Path)
    ap.add_argument("held_out_dir", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--ckpt", default="checkpoints/dfdn_lite.safetensors")
    ap.add_argument("--batches", type=int, default=64)
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    nets = {"as exported": DetailPredictor.from_checkpoint(args.ckpt),
            "recomputed": DetailPredictor.from_checkpoint(recalibrated(args.ckpt, args.train_dir, args.out,
                                                                       args.batches))}
    first = nets["as exported"]
    folders = list_samples(args.held_out_dir)
    source = ScanFolder(folders=folders)
    zones: dict[int, np.ndarray] = {}
    pooled: dict[str, list[torch.Tensor]] = {k: [] for k in ("gt", *nets)}
    for i, folder in enumerate(folders):
        s = read_sample(folder)
        v = scored_texels(s, first.face_model, first.meta.regions, zones)
        tm, m = sample_texel_mm(s), v.bool().expand(-1, 2, -1, -1)
        gt = band_normals(s.displacement_mm, tm, v)[m]
        pooled["gt"].append(gt)
        line = folder.name
        for name, net in nets.items():
            pred = band_normals(net.full_map(s.texture, source.fit(i) if net.needs_fit else None).displacement_mm,
                                tm, v)[m]
            pooled[name].append(pred)
            line += f"; {name} r {np.corrcoef(pred, gt)[0, 1]:.3f}, amplitude {pred.norm() / gt.norm():.3f}"
        print(line, flush=True)
    g = torch.cat(pooled["gt"])
    for name in nets:
        p = torch.cat(pooled[name])
        print(f"pooled over {len(folders)} samples, {name}: r {np.corrcoef(p, g)[0, 1]:.4f}, amplitude "
              f"{p.norm() / g.norm():.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
