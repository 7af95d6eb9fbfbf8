"""Add the flat-line maps (marks.png, shadow_edges.png) to photo-level samples written without them.

    python datasets/add_flat_line_maps.py --data-dir data/photo_scans --workers 2

The maps say where the input shows dark lines the GT relief does not have: colour-only marks painted into the
albedo (brows, hair strands, stubble, moles) and edges of cast shadows. Samples generated now carry them; for older
ones the marks are replayed from the seed (checked against ``sample.json`` before writing) and the shadow edges
come from the stored ``photo_gt.npz`` (samples written before it held ``shadow`` get none). Training weights the
loss there with ``data.scans.flat_line_weight``. Existing files are kept.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from fds.data.photo_scans import PhotoScanGenerator, add_flat_line_maps_to_folder


def main(argv: list[str] | None = None) -> int:
    root = Path(__file__).resolve().parents[1]
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path, default=root / "data" / "photo_scans", help="folder of sample folders")
    ap.add_argument("--face-model", default="sfm")
    ap.add_argument("--gt-resolution", type=int, default=1024, help="GT head maps' side the samples were made at")
    ap.add_argument("--workers", type=int, default=0, help="DataLoader worker processes (0 = this one)")
    args = ap.parse_args(argv)
    if not args.data_dir.is_dir():
        ap.error(f"--data-dir {args.data_dir} is not a folder of sample folders")
    gen = PhotoScanGenerator(args.face_model, gt_resolution=args.gt_resolution)
    outcome = add_flat_line_maps_to_folder(args.data_dir, gen, workers=args.workers, progress=True)
    for result, names in sorted(outcome.items()):
        print(f"{result}: {len(names)}" + (f" ({', '.join(names[:5])}{', …' if len(names) > 5 else ''})"
                                          if result.startswith("failed") else ""))
    return 1 if any(r.startswith("failed") for r in outcome) else 0


if __name__ == "__main__":
    raise SystemExit(main())
