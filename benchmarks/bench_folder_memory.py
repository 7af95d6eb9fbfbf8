"""A folder run's peak memory and seconds per photo: the inference settings of today against those before
2026-12-07 (seventeenth session), interleaved in one process.

    .venv/bin/python benchmarks/bench_folder_memory.py [--photos 10] [--rounds 2] [--out docs/bench_folder_memory.md]

glibc keeps a stage's freed buffers in its arenas, so each stage of a photo peaked on top of the last stage's
leftovers (fds.memory). Today the pipeline hands them back between stages (before the unwrap, after the photo scale,
before and after the network) and the network takes 8 windows per call. The former settings are rebuilt in the same
process: 16 windows per call, and freed memory handed back only between photos (the stage-level calls are switched
off for those runs). Both run ``DetailPipeline.run`` sequentially (``workers=0``, the default) on the first
``--photos`` labelled photos of the data kit at 1024², after a warm-up photo, in the order former, today, today,
former (``--rounds`` times), so a drift of the machine's speed falls on both alike. Peak PSS is sampled every 0.1 s
(:class:`bench_pipeline.TreeMemory`); every run writes the same files (checked by digest).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from bench_pipeline import SHIPPED_CHECKPOINT, TreeMemory, _digests, folder_photos
from machine import describe

import fds.detail.predictor
import fds.memory
import fds.pipeline
import fds.proxy.stage
from fds.pipeline import DetailPipeline, DetailSettings

ROOT = Path(__file__).resolve().parents[1]
STAGE_MODULES = (fds.proxy.stage, fds.detail.predictor, fds.pipeline)  # modules that call release_free_memory


def _between_photos_only() -> bool:
    """The former behaviour: hand memory back after each photo (``DetailPipeline._run_one``), not between stages."""
    caller = sys._getframe(1).f_code.co_name
    return fds.memory.release_free_memory() if caller == "_run_one" else False


def _use(release: Callable[[], bool]) -> None:
    for module in STAGE_MODULES:
        module.release_free_memory = release  # type: ignore[attr-defined]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2, help="repeats of the order former, today, today, former")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--ckpt", default=str(SHIPPED_CHECKPOINT))
    parser.add_argument("--out", default=str(ROOT / "docs" / "bench_folder_memory.md"))
    args = parser.parse_args()
    torch.set_num_threads(min(args.threads, os.cpu_count() or 1))
    photos = folder_photos(args.photos)
    pipe = DetailPipeline(args.ckpt, device="cpu", settings=DetailSettings(resolution=1024))
    today = pipe.predictor.batch_size
    runs: dict[str, list[tuple[float, float]]] = {"former": [], "today": []}
    digests: dict[str, dict[str, str]] = {}
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        pipe.run(photos[-1:], Path(tmp) / "warm", workers=0)
        for i, name in enumerate(["former", "today", "today", "former"] * args.rounds):
            _use(_between_photos_only if name == "former" else fds.memory.release_free_memory)
            pipe.predictor.batch_size = 16 if name == "former" else today
            fds.memory.release_free_memory()
            out = Path(tmp) / f"run{i}"
            with TreeMemory() as mem:
                t0 = time.perf_counter()
                outcomes = pipe.run(photos, out, workers=0)
                wall = time.perf_counter() - t0
            if any(not o.ok for o in outcomes):
                raise SystemExit(f"{name} run {i}: a photo failed: {[o.reason for o in outcomes if not o.ok]}")
            digests[f"{name} {i}"] = _digests(out)
            shutil.rmtree(out)
            runs[name].append((wall / len(photos), mem.peak["pss"] / 1e9))
            print(f"{name}: {wall / len(photos):.2f} s per photo, peak PSS {mem.peak['pss'] / 1e9:.3f} GB", flush=True)
    _use(fds.memory.release_free_memory)
    load_after = os.getloadavg()
    same = len({tuple(sorted(d.items())) for d in digests.values()}) == 1
    sec = {k: statistics.mean(s for s, _ in v) for k, v in runs.items()}
    lines = ["# Folder memory, today's settings against the former (`benchmarks/bench_folder_memory.py`)", "",
             f"Machine: {describe('cpu')}; load average {load_before[0]:.1f} before, {load_after[0]:.1f} after. "
             f"{len(photos)} photos (the first {len(photos)} labelled photos of the data kit), detail.resolution=1024, "
             f"sequential, one process, {args.rounds * 4} runs interleaved, after a warm-up photo. Former: 16 windows "
             f"per network call, memory handed back between photos only; today: {today} windows per call, memory "
             "handed back between stages too.", "",
             "| settings | runs | s per photo, each run | mean | peak PSS, GB, each run | highest |",
             "|---|---:|---|---:|---|---:|"]
    for k, v in runs.items():
        lines.append(f"| {k} | {len(v)} | {', '.join(f'{s:.2f}' for s, _ in v)} | {sec[k]:.2f} | "
                     f"{', '.join(f'{m:.2f}' for _, m in v)} | {max(m for _, m in v):.2f} |")
    lines += ["", f"- Today / former, seconds per photo: {sec['today'] / sec['former']:.2f}×; highest peak "
              f"{max(m for _, m in runs['today']) - max(m for _, m in runs['former']):+.2f} GB.",
              f"- Every run wrote the same files: {'yes' if same else 'NO'}."]
    text = "\n".join(lines) + "\n"
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
