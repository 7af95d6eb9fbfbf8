"""Training throughput of the DFDN configs: steps/s and patches/s of real DFDNModule training steps.

Runs a Lightning Trainer on a repeated synthetic batch (256² patches by default) and times each training
batch after a few warm-up batches. Two kinds of step are timed: supervised (geometry batch: D update + G
update with GAN and L1 losses) and unsupervised (appearance batch: G update through SH shading).
CPU runs in fp32; a CUDA GPU, when present, in bf16-mixed.

    python benchmarks/bench_models.py                      # lite and paper on CPU (and GPU if any)
    python benchmarks/bench_models.py --configs lite --batch 8 --steps 10 --threads 2
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import time
from pathlib import Path

import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"


class _Timer(pl.Callback):
    def __init__(self, skip: int) -> None:
        self.skip, self.times, self._t = skip, [], 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self._t = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        if batch_idx >= self.skip:
            self.times.append(time.perf_counter() - self._t)


def _batches(b: int, size: int) -> tuple[dict, dict]:
    g = torch.Generator().manual_seed(0)
    geo = {
        "input": torch.randn(b, 1, size, size, generator=g) * 0.2,
        "displacement": torch.tanh(torch.randn(b, 1, size, size, generator=g) * 0.1),
        "mask": torch.ones(b, 1, size, size),
        "region": ["forehead"] * b,
    }
    rows = torch.arange(size, dtype=torch.float32)[:, None].expand(size, size) * 0.1
    cols = torch.arange(size, dtype=torch.float32)[None].expand(size, size) * 0.1
    pos = torch.stack([cols, -rows, torch.zeros_like(rows)])[None].expand(b, -1, -1, -1).contiguous()
    normal = torch.zeros_like(pos)
    normal[:, 2] = 1
    sh = torch.zeros(b, 3, 9)
    sh[:, :, 0], sh[:, :, 2] = 2 * math.sqrt(math.pi) * 0.5, 0.8
    app = {
        "input": geo["input"],
        "texture": torch.rand(b, 3, size, size, generator=g),
        "visibility": torch.ones(b, 1, size, size),
        "position_mm": pos,
        "normal": normal,
        "albedo": torch.full((b, 3, size, size), 0.7),
        "sh": sh,
        "region": geo["region"],
    }
    return geo, app


def bench(config: str, device: str, batch: int, size: int, steps: int, warmup: int) -> dict:
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", overrides=[f"model={config}", f"units.patch_size={size}", "model.warmup_epochs=0"]).model
    model = instantiate(cfg)
    params = sum(p.numel() for p in model.parameters())
    geo, app = _batches(batch, size)
    out = {"config": config, "device": device, "batch": batch, "params_M": params / 1e6}
    for kind, data in [("geo", geo), ("app", {"geo": geo, "app": app})]:
        n = warmup + steps if kind == "geo" else 2 * (warmup + steps)  # app: every other batch
        timer = _Timer(skip=warmup if kind == "geo" else 2 * warmup)
        trainer = pl.Trainer(
            max_epochs=1,
            accelerator="gpu" if device == "cuda" else "cpu",
            devices=1,
            precision="bf16-mixed" if device == "cuda" else "32-true",
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            callbacks=[timer],
        )
        loader = torch.utils.data.DataLoader([data] * n, batch_size=None)
        trainer.fit(model, loader)
        times = timer.times if kind == "geo" else timer.times[1::2]  # odd batch_idx = appearance steps
        step_s = sorted(times)[len(times) // 2]  # median
        out[f"{kind}_steps_per_s"] = 1.0 / step_s
        out[f"{kind}_patches_per_s"] = batch / step_s
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", default=["lite", "paper"])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--batch-paper-cpu", type=int, default=2, help="smaller batch for paper on CPU")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per kind")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--devices", nargs="+", default=["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_float32_matmul_precision("high")
    cpu = platform.processor() or platform.machine()
    print(
        f"# {platform.node()} | {cpu} | {os.cpu_count()} cores, {args.threads} torch threads | "
        f"load avg {os.getloadavg()[0]:.1f} | torch {torch.__version__}"
        + (f" | {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else "")
    )
    print(
        "| config | device | params (M) | batch | sup. steps/s | sup. patches/s | unsup. steps/s | unsup. patches/s |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for device in args.devices:
        for config in args.configs:
            b = args.batch_paper_cpu if (config == "paper" and device == "cpu") else args.batch
            r = bench(config, device, b, args.size, args.steps, args.warmup)
            print(
                f"| {config} | {device}{' bf16' if device == 'cuda' else ' fp32'} | {r['params_M']:.1f} | {b} | "
                f"{r['geo_steps_per_s']:.3g} | {r['geo_patches_per_s']:.3g} | "
                f"{r['app_steps_per_s']:.3g} | {r['app_patches_per_s']:.3g} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
