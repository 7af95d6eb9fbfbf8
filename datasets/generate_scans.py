"""Write N procedural detail-scan samples (the format of datasets/README.md) into a folder.

    python datasets/generate_scans.py --out data/scans --num 16 --resolution 1024 --workers 2

Each sample folder is written atomically; existing complete samples are kept, so a rerun resumes.
Albedo comes from the labelled photos of the shared data kit (``--albedo-dir``; none → palette fallback).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from fds.data.procedural import ProceduralScanGenerator, default_albedo_dirs, write_procedural_samples


def main(argv: list[str] | None = None) -> int:
    root = Path(__file__).resolve().parents[1]
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=root / "data" / "scans", help="folder of sample folders")
    ap.add_argument("--num", type=int, default=16, help="number of samples")
    ap.add_argument("--start-seed", type=int, default=0, help="seeds start..start+num-1 (folder proc_<seed>)")
    ap.add_argument("--resolution", type=int, default=1024, help="UV map side in texels")
    ap.add_argument("--face-model", default="sfm")
    ap.add_argument("--age-range", type=float, nargs=2, default=(0.0, 1.0), metavar=("LO", "HI"))
    ap.add_argument("--degrade-strength", type=float, default=1.0, help="0 = clean renderings")
    ap.add_argument("--albedo-dir", action="append", default=None,
                    help="photos with same-stem .pts landmarks for the albedo bank (repeatable); "
                         "default: <shared data>/faces/labelled; 'none' for the palette fallback")
    ap.add_argument("--albedo-max-photos", type=int, default=16)
    ap.add_argument("--cache-dir", type=Path, default=root / "data" / "cache", help="albedo-bank cache")
    ap.add_argument("--occlusion-strength", type=float, default=1.0,
                    help="cavity occlusion of the shading (fds.data.occlusion); 0 = SH shading only")
    ap.add_argument("--occlusion-radius-mm", type=float, default=1.5)
    ap.add_argument("--workers", type=int, default=0, help="processes (0 = this one)")
    args = ap.parse_args(argv)
    albedo = args.albedo_dir if args.albedo_dir is not None else default_albedo_dirs(root / ".." / "shared" / "data")
    albedo = [d for d in albedo if d.lower() != "none"]
    gen = ProceduralScanGenerator(args.face_model, args.resolution, tuple(args.age_range),
                                  degrade_strength=args.degrade_strength, albedo_dirs=albedo,
                                  albedo_max_photos=args.albedo_max_photos, cache_dir=args.cache_dir,
                                  occlusion_strength=args.occlusion_strength,
                                  occlusion_radius_mm=args.occlusion_radius_mm)
    t0 = time.perf_counter()
    folders = write_procedural_samples(args.out, args.num, gen, args.start_seed, args.workers)
    dt = time.perf_counter() - t0
    print(f"{len(folders)} samples in {args.out} ({dt:.1f} s, {len(folders) / max(dt, 1e-9):.2f} samples/s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
