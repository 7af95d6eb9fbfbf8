"""Turn textured scans into photo-level samples (rendered photos + GT detail in the fitted proxy's UV).

    python datasets/ingest_scans.py --units mm --out data/scans head.obj:head_albedo.png[:disp.npy] ...

Each scan is ``MESH:ALBEDO`` with an optional third part: a float displacement map (``.npy``/``.npz``, heights
along the mesh normal in the same unit as the mesh) or a tangent-space normal map (``.png``: shades the photos and
is integrated to heights for the GT). Without either, the mesh is measured against the face model refitted to it.
``--units`` (mm, cm or m) is required: there is no default. Meshes need UVs and must face +z with y up. Each
scan gives ``--photos`` samples ``scan_<stem>_<k>`` (written atomically); a bad scan or a photo without a
detectable face is reported by name and the batch goes on.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from fds.data.photo_scans import PhotoScanGenerator
from fds.data.scan_ingest import ScanInputError, ingest_scan, load_scan


def main(argv: list[str] | None = None) -> int:
    root = Path(__file__).resolve().parents[1]
    wild = root / ".." / "shared" / "data" / "faces" / "wild"
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scans", nargs="+", help="MESH:ALBEDO[:DISPLACEMENT.npy|NORMALMAP.png]")
    ap.add_argument("--units", required=True, choices=["mm", "cm", "m"], help="length of one mesh unit")
    ap.add_argument("--out", type=Path, default=root / "data" / "scans")
    ap.add_argument("--photos", type=int, default=3, help="photos (samples) per scan")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--resolution", type=int, default=1024, help="fitted UV maps' side")
    ap.add_argument("--map-resolution", type=int, default=2048, help="the scan's maps are resampled to this side")
    ap.add_argument("--cache-dir", type=Path, default=root / "data" / "cache")
    args = ap.parse_args(argv)
    gen = PhotoScanGenerator("sfm", args.resolution, background_dirs=[str(wild)] if wild.is_dir() else [],
                             cache_dir=args.cache_dir)
    gen.prepare()
    failed, total = [], 0
    for spec in args.scans:
        parts = spec.split(":")
        if len(parts) not in (2, 3):
            failed.append(f"{spec}: expected MESH:ALBEDO[:MAP]")
            continue
        extra = Path(parts[2]) if len(parts) == 3 else None
        disp = extra if extra is not None and extra.suffix.lower() in (".npy", ".npz") else None
        normal = extra if extra is not None and disp is None else None
        try:
            scan = load_scan(parts[0], parts[1], args.units, disp, normal, args.map_resolution)
            written, skipped = ingest_scan(scan, gen, args.out, args.photos, args.seed)
        except ScanInputError as exc:
            failed.append(str(exc))
            continue
        total += len(written)
        failed += [f"SKIPPED {s}" for s in skipped]
    print(f"{total} samples written to {args.out}; {len(failed)} problems")
    for line in failed:
        print(f"  {line}")
    return 1 if failed and total == 0 else 0


if __name__ == "__main__":
    raise SystemExit(main())
