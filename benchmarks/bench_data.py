"""Data-stage throughput: procedural samples/s, patches/s loaded with 0 vs 2 workers; sample figures.

    python benchmarks/bench_data.py [--resolution 1024] [--samples 4] [--out docs/bench_data.md] [--figures]

Writes a Markdown table (``--out``) and, with ``--figures``, ``docs/img/data_samples.png`` (input texture,
GT displacement, detailed normals per procedural sample) and ``docs/img/data_wild.png`` (photo, proxy unwrap,
estimated albedo per wild photo).
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from fds.data.procedural import ProceduralScanGenerator, default_albedo_dirs, write_procedural_samples
from fds.data.scans import GeometryPatches, ScanFolder

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT / ".." / "shared" / "data"


def bench_generation(gen: ProceduralScanGenerator, n: int) -> float:
    gen.generate(10_000)  # warm-up: chart, region masks, albedo bank
    t0 = time.perf_counter()
    for s in range(n):
        gen.generate(s)
    return n / (time.perf_counter() - t0)


def bench_loading(folder: Path, patch: int, workers: int, batches: int = 16, batch_size: int = 8) -> float:
    ds = GeometryPatches(ScanFolder(folder), patch_size=patch, num_patches=batches * batch_size)
    for i in range(4 * len(ds.source)):  # warm-up in this process (forked workers inherit it): sample
        ds[i]  # decoding, UV chart, zones and patch candidates are one-off costs, not steady-state throughput
    loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, num_workers=workers)
    t0 = time.perf_counter()
    n = sum(len(b["region"]) for b in loader)
    return n / (time.perf_counter() - t0)


def _grey(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    g = (np.clip((x - lo) / (hi - lo), 0, 1) * 255).astype(np.uint8)
    return np.dstack([g] * 3)


def _cell(a: np.ndarray, size: int) -> np.ndarray:
    return np.asarray(Image.fromarray(a).resize((size, size), Image.Resampling.LANCZOS))


def figure_samples(gen: ProceduralScanGenerator, seeds: list[int], path: Path, size: int = 256) -> None:
    rows = []
    for seed in seeds:
        s, internals = gen.generate_with_internals(seed)
        n = internals["normal_detail"][0].permute(1, 2, 0).numpy()
        n_img = ((n * 0.5 + 0.5) * 255 * s.mask[..., None]).astype(np.uint8)
        # crop the forehead-to-chin box of the chart so the detail is visible
        rows.append(np.concatenate([_cell(s.texture, size), _cell(_grey(s.displacement_mm, -0.8, 0.4), size),
                                    _cell(n_img, size)], 1))
    Image.fromarray(np.concatenate(rows, 0)).save(path, optimize=True)


def figure_wild(cache: Path, path: Path, max_photos: int, size: int = 176) -> list[str]:
    from fds.data.wild import find_wild_photos, prepare_wild

    photos = find_wild_photos([SHARED / "faces" / "wild"], True, max_photos)
    prep = prepare_wild(photos, cache, 512, {"unwrap": {"resolution": 512}})
    rows = []
    for f, src in zip(prep.files[:4], prep.sources[:4], strict=False):
        with np.load(f) as z:
            photo = Image.open(src).convert("RGB")
            photo.thumbnail((size, size))
            canvas = np.zeros((size, size, 3), np.uint8)
            p = np.asarray(photo)
            canvas[: p.shape[0], : p.shape[1]] = p
            albedo = (np.clip(z["albedo"].astype(np.float32), 0, 1) * 255).astype(np.uint8)
            rows.append(np.concatenate([canvas, _cell(z["texture"], size), _cell(albedo, size)], 1))
    Image.fromarray(np.concatenate(rows, 0)).save(path, optimize=True)
    return [s for s, _ in prep.skipped]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--resolution", type=int, default=1024)
    ap.add_argument("--patch", type=int, default=256)
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "bench_data.md")
    ap.add_argument("--figures", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    albedo = default_albedo_dirs(SHARED)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache"
        for r in sorted({512, args.resolution}):
            gen = ProceduralScanGenerator(resolution=r, albedo_dirs=albedo, albedo_max_photos=8, cache_dir=cache)
            rows.append((f"procedural samples/s, {r}² maps (1 process)", bench_generation(gen, args.samples)))
        gen = ProceduralScanGenerator(resolution=args.resolution, albedo_dirs=albedo, albedo_max_photos=8,
                                      cache_dir=cache)
        folder = Path(tmp) / "scans"
        write_procedural_samples(folder, args.samples, gen)
        for w in (0, 2):
            rows.append((f"patches/s loaded, {args.patch}² from {args.resolution}² samples, {w} workers",
                         bench_loading(folder, args.patch, w)))
        if args.figures:
            img = ROOT / "docs" / "img"
            img.mkdir(parents=True, exist_ok=True)
            figure_samples(gen, [101, 202, 303], img / "data_samples.png")
            figure_wild(cache, img / "data_wild.png", max_photos=6)
    lines = ["# Data-stage throughput", "",
             f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch threads "
             f"{torch.get_num_threads()}; `python benchmarks/bench_data.py --resolution {args.resolution} "
             f"--samples {args.samples} --figures`. Shared machine, so figures are indicative. Loading is measured "
             "after a warm-up (sample decoding and UV zones are cached per worker).", "",
             "| measure | value |", "| --- | --- |"]
    lines += [f"| {name} | {value:.2f} |" for name, value in rows]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
