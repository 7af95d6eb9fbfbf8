"""Landmark error against exposure: where does a photo become too dark or too bright for the proxy stage?

Every labelled photo of the shared kit (human iBUG-68 landmarks) is re-exposed by ``EV`` stops in linear light
(sRGB → linear, × 2^EV, clipped, → sRGB, 8 bit), then detected and landmarked as the proxy stage does
(:class:`fds.proxy.landmarks.FaceDetector`). For each copy it records whether a face was found, the landmark
NME (mean error / outer-eye-corner distance, 300-W) and the exposure statistics of the face that fds can measure
at run time (:func:`fds.proxy.quality.face_exposure`): the face's median luma and the fraction of its pixels
clipped to black or white.

    .venv/bin/python benchmarks/exposure_landmarks.py [--ev -6 -5 ... 4] [--out docs/bench_exposure.md]

Per-copy rows are kept in ``--rows`` (JSON) so the table can be rebuilt without re-running the detector.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from fds.assets import shared_data_dir
from fds.proxy.landmarks import FaceDetector, load_image, nme, read_pts
from fds.proxy.quality import face_exposure, simulate_exposure

ROOT = Path(__file__).resolve().parents[1]
FAIL_NME = 0.08  # 300-W's failure threshold (normalised by the outer-eye-corner distance)


def measure(photos: list[Path], evs: list[float], rows_path: Path) -> list[dict]:
    rows = json.loads(rows_path.read_text()) if rows_path.is_file() else []
    done = {(r["photo"], r["ev"]) for r in rows}
    det = FaceDetector(method="hog")  # the stage's first detector; mmod only runs when HOG finds nothing
    for photo in photos:
        gt = read_pts(photo.with_suffix(".pts"))
        image = load_image(photo)
        for ev in evs:
            if (photo.name, ev) in done:
                continue
            img = simulate_exposure(image, ev)
            row = {"photo": photo.name, "ev": ev, "found": False}
            try:
                faces = det(img, all_faces=True)
            except Exception:  # NoFaceError: nothing found
                faces = []
            if faces:
                # the face whose box holds the annotated one (AFW photos have several faces)
                centre = gt.mean(0)
                face = min(faces, key=lambda f: float(np.linalg.norm((f.box_px[:2] + f.box_px[2:]) / 2 - centre)))
                stats = face_exposure(img, face.landmarks_px)
                row.update(found=True, nme=nme(face.landmarks_px, gt), **stats)
            rows.append(row)
            print(json.dumps(row), flush=True)
        rows_path.parent.mkdir(parents=True, exist_ok=True)
        rows_path.write_text(json.dumps(rows))
    return rows


def table(rows: list[dict], evs: list[float]) -> str:
    lines = ["| EV | photos | face found | median NME | NME > 0.08 | median face luma | p10 face luma | "
             "median clipped fraction |", "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for ev in evs:
        rs = [r for r in rows if r["ev"] == ev]
        found = [r for r in rs if r["found"]]
        if not rs:
            continue
        nmes = np.array([r["nme"] for r in found]) if found else np.array([np.nan])
        luma = np.array([r["median_luma"] for r in found]) if found else np.array([np.nan])
        clip = np.array([r["clipped_fraction"] for r in found]) if found else np.array([np.nan])
        lines.append(f"| {ev:+g} | {len(rs)} | {len(found) / len(rs):.0%} | {np.median(nmes):.3f} | "
                     f"{np.mean(nmes > FAIL_NME):.0%} | {np.median(luma):.0f} | {np.percentile(luma, 10):.0f} | "
                     f"{np.median(clip):.2f} |")
    return "\n".join(lines)


def by_statistic(rows: list[dict], key: str, edges: list[float]) -> str:
    """Landmark error of the detected faces binned by a run-time statistic (all EVs pooled), as a ratio to the
    median NME of the photos as taken (EV 0) in the same run."""
    found = [r for r in rows if r["found"]]
    baseline = float(np.median([r["nme"] for r in found if r["ev"] == 0]))
    lines = [f"| {key} | faces | median NME | × as taken ({baseline:.3f}) | NME > 0.08 |", "|---|---:|---:|---:|---:|"]
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        rs = [r for r in found if lo <= r[key] < hi]
        if rs:
            n = np.array([r["nme"] for r in rs])
            lines.append(f"| [{lo:g}, {hi:g}) | {len(rs)} | {np.median(n):.3f} | {np.median(n) / baseline:.2f} | "
                         f"{np.mean(n > FAIL_NME):.0%} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ev", type=float, nargs="+", default=[-7, -6, -5, -4, -3, -2, 0, 2, 3, 4, 5])
    parser.add_argument("--max-photos", type=int, default=0)
    parser.add_argument("--rows", type=Path, default=ROOT / "logs" / "bench_exposure_rows.json")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    labelled = shared_data_dir() / "faces" / "labelled"
    photos = sorted(p for p in labelled.iterdir() if p.suffix in (".jpg", ".png") and p.with_suffix(".pts").is_file())
    photos = photos[: args.max_photos or None]
    t = time.perf_counter()
    rows = measure(photos, args.ev, args.rows)
    listed = [r for r in rows if r["ev"] in args.ev]
    report = "\n\n".join([
        f"{len(photos)} labelled photos × {len(args.ev)} exposures, measured in {time.perf_counter() - t:.0f} s on "
        f"{platform.processor() or platform.machine()} ({os.cpu_count()} cores)",
        table(rows, args.ev),
        by_statistic(listed, "median_luma", [0, 5, 10, 15, 20, 25, 30, 40, 60, 80, 120, 160, 200, 235, 245, 250,
                                             253, 256]),
        by_statistic(listed, "clipped_fraction", [0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.7, 1.01]),
    ])
    print(report)
    if args.out:
        args.out.write_text(report + "\n")


if __name__ == "__main__":
    main()
