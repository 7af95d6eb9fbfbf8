"""Add ``marks.png`` (where colour-only marks lie, in the fitted UV) to photo-level samples written without it.

    python datasets/add_photo_marks.py --data-dir data/photo_scans --workers 2

Samples generated now carry the file; this replays each older sample's seed (its marks depend only on the seed)
and checks the replay against ``sample.json`` before writing. Training uses the map to weight the loss where the
photo shows dark lines the GT relief does not have (``data.scans.marks_weight``). Existing files are kept.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from fds.data.photo_scans import PhotoScanGenerator, add_marks_to_folder


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
    outcome = add_marks_to_folder(args.data_dir, gen, workers=args.workers, progress=True)
    for result, names in sorted(outcome.items()):
        print(f"{result}: {len(names)}" + (f" ({', '.join(names[:5])}{', …' if len(names) > 5 else ''})"
                                          if result.startswith("failed") else ""))
    return 1 if any(r.startswith("failed") for r in outcome) else 0


if __name__ == "__main__":
    raise SystemExit(main())
