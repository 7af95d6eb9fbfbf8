"""The inference pipeline over shared photos: per-stage time at 1024² and 4096², and the detail network's
cost per 256² patch for the shipped ``lite`` checkpoint against the ``paper`` network, in the same run.

    .venv/bin/python benchmarks/bench_pipeline.py [--photos 4] [--out docs/bench_pipeline.md]

Stages come from each photo's ``result.json`` (proxy stages are measured uncached). The 4096² detail
stage at the paper's texel density cuts 3,439 patches; its time is the measured seconds per patch
(median over ``--patches`` patches) times that count, for both networks.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import matplotlib.cbook
import numpy as np
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from fds.assets import shared_data_dir
from fds.demo import SHIPPED_CHECKPOINT
from fds.pipeline import DetailPipeline, DetailSettings

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("proxy_detect", "proxy_landmarks", "proxy_emotion", "proxy_fit", "proxy_unwrap", "detail", "maps",
          "bake", "preview")


def photos(n: int) -> list[Path]:
    labelled = sorted((shared_data_dir() / "faces" / "labelled").glob("helen_*.jpg"))
    picks = [labelled[i] for i in np.linspace(0, len(labelled) - 1, max(n - 1, 1)).astype(int)] if labelled else []
    return [Path(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)), *picks][:n]


def per_patch_seconds(module, n: int, batch: int = 8) -> float:
    x = torch.randn(batch, 1, 256, 256)
    with torch.no_grad():
        module.predict_step({"input": x, "region": ["forehead"] * batch}, 0)  # warm-up
        times = []
        for _ in range(max(n // batch, 1)):
            t = time.perf_counter()
            module.predict_step({"input": x, "region": ["forehead"] * batch}, 0)
            times.append((time.perf_counter() - t) / batch)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=4)
    parser.add_argument("--patches", type=int, default=16)
    parser.add_argument("--ckpt", default=str(SHIPPED_CHECKPOINT))
    parser.add_argument("--out", default=str(ROOT / "docs" / "bench_pipeline.md"))
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for res in (1024, 4096):
            pipe = DetailPipeline(args.ckpt, cache_dir=None, device="cpu",
                                  settings=DetailSettings(resolution=res, max_triangles=2_000_000))
            t = time.perf_counter()
            outcomes = pipe.run(photos(args.photos), Path(tmp) / f"r{res}")
            wall = time.perf_counter() - t
            stage_times = {s: [] for s in STAGES}
            for o in outcomes:
                for folder in o.faces:
                    timings = json.loads((Path(folder) / "result.json").read_text())["timings_s"]
                    for s in STAGES:
                        stage_times[s].append(timings.get(s, float("nan")))
            rows[res] = ({s: statistics.median(v) for s, v in stage_times.items() if v}, wall,
                         sum(o.ok for o in outcomes), len(outcomes))
    lite = DetailPipeline(args.ckpt, cache_dir=None, device="cpu").module
    with initialize_config_dir(version_base="1.3", config_dir=str(ROOT / "configs")):
        paper = instantiate(compose(config_name="train", overrides=["model=paper"]).model).eval()
    sec = {"lite (shipped)": per_patch_seconds(lite, args.patches), "paper": per_patch_seconds(paper, args.patches)}

    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor())
    lines = [
        "# Inference pipeline (`benchmarks/bench_pipeline.py`)", "",
        f"Machine: {cpu}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"no GPU. Photos: grace_hopper + {args.photos - 1} HELEN photos; median seconds per face, uncached proxy.",
        "", "| stage | " + " | ".join(f"{r}²" for r in rows) + " |", "|---|" + "---:|" * len(rows)]
    for s in STAGES:
        lines.append(f"| {s} | " + " | ".join(f"{rows[r][0].get(s, float('nan')):.2f}" for r in rows) + " |")
    lines.append("| wall, all photos | " + " | ".join(f"{rows[r][1]:.1f}" for r in rows) + " |")
    lines.append("| photos ok | " + " | ".join(f"{rows[r][2]}/{rows[r][3]}" for r in rows) + " |")
    lines += ["", "At both output sizes the shipped network runs at its training density (1024² maps, 169 patches) "
              "and the 4096² map is a resampling of it. Detail network alone, same run, 256² patches, batch 8:", "",
              "| network | s per patch | 4096² paper-density grid (3,439 patches), s |", "|---|---:|---:|"]
    for name, s in sec.items():
        lines.append(f"| {name} | {s:.4f} | {s * 3439:.0f} |")
    lines.append(f"\nThe paper network is {sec['paper'] / sec['lite (shipped)']:.0f}× slower per patch than lite.")
    text = "\n".join(lines) + "\n"
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
