"""Which photo scales did the photo-level training data show the network? Per sample folder, the fitted proxy's
photo scale (``fds.proxy.photo_scale``: log2 photo px per UV texel, median over the face's chart) beside the
generator's nominal face width (``sample.json`` ``photo.face_width_px``, measured at the nearest point's depth) and
the fitted proxy's projected width (x extent of its vertices in the photo, px).

    python benchmarks/photo_scale_range.py --data-dir DIR [DIR ...] [--resolution 1024]

Prints the quantiles of each, and the smallest scale: a network that reads the photo scale has seen nothing
below it, so a face whose scale lies below it gets extrapolated detail (``fds.proxy.photo_scale.TRAINED_RANGE``;
a training export stores its own run's range, ``fds.models.checkpoint.training_photo_scales``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from fds.data.scale_range import sample_photo_scales
from fds.data.scans import ScanFolder, list_samples


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", nargs="+", required=True, help="folders of photo-level sample folders")
    ap.add_argument("--resolution", type=int, default=1024, help="UV map size the network reads (texels)")
    args = ap.parse_args()

    folders = sorted({p.resolve() for d in args.data_dir for p in list_samples(d)})
    source = ScanFolder(folders=folders)
    scales = sample_photo_scales(folders, args.resolution)
    rows = []
    for i, folder in enumerate(source.folders):
        fit = source.fit(i)
        px = fit.project(fit.vertices_mm)
        nominal = json.loads((Path(folder) / "sample.json").read_text())["photo"]["face_width_px"]
        rows.append((float(scales[i]), float(np.ptp(px[:, 0])), float(nominal)))
    a = np.asarray(rows)
    print(f"{len(a)} samples from {', '.join(args.data_dir)} at {args.resolution}² texels")
    qs = [0, 1, 5, 50, 95, 99, 100]
    print("quantile          " + " ".join(f"{q:>7d}%" for q in qs))
    for j, name in enumerate(["photo scale (log2 px/texel)", "projected width (px)", "nominal width (px)"]):
        print(f"{name[:17]:17s} " + " ".join(f"{v:8.2f}" for v in np.percentile(a[:, j], qs)))
    slope, icpt = np.polyfit(np.log2(a[:, 1]), a[:, 0], 1)
    print(f"photo scale ≈ {slope:.3f} · log2(projected width px) {icpt:+.3f}")
    for what, k in (("smallest", int(np.argmin(a[:, 0]))), ("largest", int(np.argmax(a[:, 0])))):
        print(f"{what} scale {a[k, 0]:.3f} ({source.folders[k].name}: projected {a[k, 1]:.0f} px, nominal "
              f"{a[k, 2]:.0f} px)")


if __name__ == "__main__":
    main()
