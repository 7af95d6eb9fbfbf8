"""Generation speed of photo-level samples (fds.data.photo_scans) against the procedural UV scans of the same run.

    python benchmarks/bench_photo_data.py --num 6 --resolution 1024 --workers 0 2

Prints seconds per sample (mean of the written ones), the stage split (render / proxy stage / GT), the skip rate
of the proxy stage on the renders, and the ratio to the procedural generator (baseline, same resolution, same
process); writes docs/bench_photo_data.md.
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

from fds.data.photo_scans import PhotoScanGenerator, write_photo_samples
from fds.data.procedural import ProceduralScanGenerator, default_albedo_dirs


def main(argv: list[str] | None = None) -> int:
    root = Path(__file__).resolve().parents[1]
    shared = root / ".." / "shared" / "data"
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--num", type=int, default=6)
    ap.add_argument("--start-seed", type=int, default=900_000)
    ap.add_argument("--resolution", type=int, default=1024)
    ap.add_argument("--workers", type=int, nargs="+", default=[0])
    ap.add_argument("--cache-dir", type=Path, default=root / "data" / "cache")
    ap.add_argument("--out", type=Path, default=root / "docs" / "bench_photo_data.md")
    args = ap.parse_args(argv)
    albedo = default_albedo_dirs(shared)
    wild = shared / "faces" / "wild"
    gen = PhotoScanGenerator("sfm", args.resolution, args.resolution, albedo_dirs=albedo,
                             background_dirs=[str(wild)] if wild.is_dir() else [], cache_dir=args.cache_dir)
    gen.prepare()
    proc = ProceduralScanGenerator("sfm", args.resolution, albedo_dirs=albedo, cache_dir=args.cache_dir)
    proc.bank  # noqa: B018
    t0 = time.perf_counter()
    for s in range(2):
        proc.generate(args.start_seed + s)
    base = (time.perf_counter() - t0) / 2
    rows = [f"| procedural (baseline) | 0 | {base:.1f} | 1.00× | – | – |"]
    print(f"procedural: {base:.1f} s/sample")
    for w in args.workers:
        seeds = range(args.start_seed + 1000 * (w + 1), args.start_seed + 1000 * (w + 1) + args.num)
        with tempfile.TemporaryDirectory() as tmp:
            rep = write_photo_samples(tmp, seeds, gen, workers=w)
            import json

            timings = [json.loads((Path(tmp) / n / "sample.json").read_text())["timings_s"] for n in rep.written]
        per = rep.wall_s / max(len(rep.written), 1)
        split = {k: float(np.mean([t[k] for t in timings])) for k in ("render", "proxy", "gt")} if timings else {}
        line = (f"| photo-level | {w} | {per:.1f} | {per / base:.2f}× | "
                f"{' / '.join(f'{v:.1f}' for v in split.values())} | {len(rep.skipped)}/{len(seeds)} |")
        rows.append(line)
        print(rep.format())
        print(line)
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}"
    load = os.getloadavg()
    text = "\n".join([
        "# Photo-level sample generation (benchmarks/bench_photo_data.py)", "",
        f"Machine: {machine}; load average at the end {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (shared cores).",
        f"UV resolution {args.resolution}² (fitted maps and GT head), {args.num} seeds per row; wall seconds per "
        "written sample (skipped photos cost time too), ratio to the procedural generator of the same run.", "",
        "| generator | workers | s / sample | vs procedural | render / proxy / GT s (in-worker) | skipped |",
        "|---|---|---|---|---|---|", *rows, ""])
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
