"""How noisy the generator's photos are next to real ones: the sensor noise left in the skin of each photo's inner
face, in 8-bit grey levels.

    python benchmarks/photo_noise.py [DATA_DIR ...] [--shared ../shared/data] [--no-wild]

For each photo, the box from the outer eye corners to the chin's top and from the brows down (iBUG points 36, 45,
19-24, 57): the labelled real photos' own ``.pts`` points, dlib's points on the wild photos, the true points of
photo-level samples (``photo_gt.npz``). Inside it, Immerkaer's estimator (a 3 × 3 Laplacian difference that
removes planes; white noise of std s gives a mean absolute response of 6 s √(2/π)) over the flattest 30 % of the
box (smallest smoothed gradient), so edges and features count little. Skin texture still adds to it, on real and
rendered skin alike, so compare the sets with each other, not with a camera's specification. For photo-level
sample folders it also prints the estimate against each camera effect the generator drew (Spearman ρ).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage, stats

# 3 × 3 Laplacian difference: zero on any plane, ‖K‖ = 6 (Immerkaer 1996)
KERNEL = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float64)
FLAT_FRACTION = 0.3


def inner_face_box(points_px: np.ndarray) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) in 0-based pixels: outer eye corners across, brows (their highest point) to the lower lip."""
    p = np.asarray(points_px, np.float64)
    return (int(round(p[36, 0])), int(round(np.nanmin(p[19:25, 1]))), int(round(p[45, 0])), int(round(p[57, 1])))


def noise_levels(image: np.ndarray, box: tuple[int, int, int, int]) -> float:
    """Estimated noise std (8-bit grey levels) in ``box`` of an RGB uint8 image; NaN for a box under 8 × 8 px."""
    x0, y0, x1, y1 = box
    grey = np.asarray(Image.fromarray(image).convert("L"), np.float64)[max(y0, 0):y1, max(x0, 0):x1]
    if min(grey.shape) < 8:
        return math.nan
    response = np.abs(ndimage.convolve(grey, KERNEL))[1:-1, 1:-1]
    smooth = ndimage.gaussian_filter(grey, 1.0)
    gradient = np.hypot(ndimage.sobel(smooth, 0), ndimage.sobel(smooth, 1))[1:-1, 1:-1]
    flat = gradient <= np.percentile(gradient, 100 * FLAT_FRACTION)
    return float(math.sqrt(math.pi / 2) * response[flat].mean() / 6)


def summary(values: list[float]) -> str:
    v = np.asarray([x for x in values if math.isfinite(x)])
    if not len(v):
        return "none"
    q10, q50, q90 = np.percentile(v, [10, 50, 90])
    return f"{len(v)} photos: median {q50:.2f}, 10th percentile {q10:.2f}, 90th {q90:.2f}"


def labelled(shared: Path) -> list[float]:
    from fds.proxy.landmarks import load_image, read_pts

    out = []
    for pts in sorted((shared / "faces" / "labelled").glob("*.pts")):
        image = next(p for p in pts.parent.glob(pts.stem + ".*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
        out.append(noise_levels(load_image(image), inner_face_box(read_pts(pts))))
    return out


def wild(shared: Path) -> list[float]:
    from fds.proxy.landmarks import FaceDetector, ImageReadError, load_image

    detector, out = FaceDetector(), []
    for path in sorted((shared / "faces" / "wild").rglob("*")):
        if path.suffix.lower() not in (".jpg", ".jpeg", ".png"):
            continue
        try:
            image = load_image(path)
        except ImageReadError:
            continue
        faces = detector(image)
        if faces:
            out.append(noise_levels(image, inner_face_box(faces[0].landmarks_px)))
    return out


def samples(data_dir: Path) -> tuple[list[float], list[dict]]:
    """Estimates of a folder of photo-level samples and the camera effects each was drawn with."""
    values, effects = [], []
    for meta_path in sorted(data_dir.glob("*/sample.json")):
        folder = meta_path.parent
        image = np.asarray(Image.open(folder / "photo.png").convert("RGB"))
        with np.load(folder / "photo_gt.npz") as gt:
            values.append(noise_levels(image, inner_face_box(gt["landmarks_px"])))
        fx = json.loads(meta_path.read_text())["photo"].get("camera_effects", {})
        effects.append({"applied": fx.get("applied", True), "shot noise": fx["noise"]["shot"],
                        "read noise": fx["noise"]["read"], "blur σ (px)": fx["blur_sigma_px"],
                        "JPEG quality": fx["jpeg_quality"], "resolution loss": fx.get("resolution_loss", 1.0)})
    return values, effects


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data_dirs", type=Path, nargs="*", help="folders of photo-level samples")
    ap.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    ap.add_argument("--no-wild", action="store_true", help="skip the wild photos (dlib on 99 photos, ~1 min)")
    args = ap.parse_args(argv)
    print("noise std in the inner face (8-bit grey levels, Immerkaer over the flattest 30 %)")
    if (args.shared / "faces" / "labelled").is_dir():
        print(f"  real, labelled: {summary(labelled(args.shared))}")
        if not args.no_wild:
            print(f"  real, wild: {summary(wild(args.shared))}")
    for d in args.data_dirs:
        values, effects = samples(d)
        applied = all(e["applied"] for e in effects)
        print(f"  {d}{'' if applied else ' (camera effects not applied)'}: {summary(values)}")
        if applied and len(values) >= 3:
            for key in ("shot noise", "read noise", "blur σ (px)", "JPEG quality", "resolution loss"):
                drawn = [e[key] for e in effects]
                if np.ptp(drawn) > 0:  # a set may hold one value (no photo lost resolution)
                    print(f"    against {key}: ρ {stats.spearmanr(values, drawn).statistic:+.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
