"""Write photo-level scan samples (rendered photos through the real proxy stage, GT ray-cast into the fitted UV).

    python datasets/generate_photo_scans.py --out data/scans --seeds 0 64 --workers 2

Folders ``photo_<seed>`` (format: datasets/README.md), each written atomically; existing complete samples are
kept, so a rerun resumes. Seeds whose photo the proxy stage cannot use are skipped, counted and listed in
``<out>/skipped.json``. Generation runs in DataLoader worker processes (dlib/eos built lazily per worker).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from fds.data.photo_scans import PhotoScanGenerator, write_photo_samples
from fds.data.procedural import default_albedo_dirs


def photo_options(args: argparse.Namespace) -> dict | None:
    """PhotoConfig fields the command line sets (None: the defaults)."""
    photo: dict = {}
    if args.face_width_px is not None:
        photo["face_width_px"] = list(args.face_width_px)
    if args.lossless_fraction is not None:
        photo["lossless_fraction"] = args.lossless_fraction
    return photo or None


def main(argv: list[str] | None = None) -> int:
    root = Path(__file__).resolve().parents[1]
    shared = root / ".." / "shared" / "data"
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=root / "data" / "scans", help="folder of sample folders")
    ap.add_argument("--seeds", type=int, nargs=2, default=(0, 16), metavar=("START", "STOP"),
                    help="seeds START..STOP-1 (give held-out sets seeds no training set uses)")
    ap.add_argument("--resolution", type=int, default=1024, help="fitted UV maps' side (texels)")
    ap.add_argument("--gt-resolution", type=int, default=1024, help="GT head maps' side (texels)")
    ap.add_argument("--face-model", default="sfm")
    ap.add_argument("--band-sigma-mm", type=float, default=4.0, help="GT detail band low-pass (mm)")
    ap.add_argument("--albedo-dir", action="append", default=None,
                    help="photos with .pts for the albedo bank (default <shared>/faces/labelled; 'none': palette)")
    ap.add_argument("--background-dir", action="append", default=None,
                    help="photos whose face-free crops become backgrounds (default <shared>/faces/wild; 'none')")
    ap.add_argument("--cache-dir", type=Path, default=root / "data" / "cache")
    ap.add_argument("--workers", type=int, default=0, help="DataLoader worker processes (0 = this one)")
    ap.add_argument("--face-width-px", type=float, nargs=2, default=None, metavar=("MIN", "MAX"),
                    help="face widths in the photo, px (default: fds.data.photo_render.PhotoConfig's 150-1000)")
    ap.add_argument("--lossless-fraction", type=float, default=None,
                    help="share of photos kept without JPEG (default: PhotoConfig's 0, every photo JPEG)")
    ap.add_argument("--cheek-creases", action="store_true",
                    help="heads carry an ageing cheek's creases (fds.data.wrinkles.cheek_creases; off: as before)")
    ap.add_argument("--skin-pigment", action="store_true",
                    help="albedo carries skin's fine pigment: mottle, redness, freckles (fds.data.skin.skin_pigment)")
    args = ap.parse_args(argv)
    albedo = args.albedo_dir if args.albedo_dir is not None else default_albedo_dirs(shared)
    wild = shared / "faces" / "wild"
    backgrounds = args.background_dir if args.background_dir is not None else ([str(wild)] if wild.is_dir() else [])
    gen = PhotoScanGenerator(args.face_model, args.resolution, args.gt_resolution,
                             albedo_dirs=[d for d in albedo if d.lower() != "none"],
                             background_dirs=[d for d in backgrounds if d.lower() != "none"],
                             cache_dir=args.cache_dir, band_sigma_mm=args.band_sigma_mm,
                             photo=photo_options(args), cheek_creases=args.cheek_creases,
                             skin_pigment=args.skin_pigment)
    report = write_photo_samples(args.out, range(*args.seeds), gen, workers=args.workers, progress=True)
    print(report.format())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
