"""Landmark error against the confidence fds can measure per face: when should it warn that the landmarks are poor?

Every labelled photo of the shared kit (human iBUG-68 landmarks) is degraded in ways photos really are, then run
through the proxy stage as ``infer`` runs it (:class:`fds.proxy.ProxyStage` with its default config: detection
HOG then mmod, landmarks, emotion prior, eos fit; the unwrap is skipped as it changes nothing measured here):

- ``original``: the photo as taken (the baseline);
- ``ev±k``: re-exposed by k stops (:func:`fds.proxy.quality.simulate_exposure`), −7…+5 as ``exposure_landmarks.py``;
- ``blur_s``: Gaussian blur of σ = s × the face's annotated outer-eye-corner distance (defocus, motion);
- ``glasses`` / ``mask`` / ``hand``: the eyes, the face below the nose, or the face's left half covered by a dark,
  light or mid-grey box placed from the annotation (sunglasses, a face mask, a hand);
- ``rot_a``: rotated in-plane by a degrees (canvas grown so nothing is cut; the annotation rotated with it).

For each copy it records whether the annotated face was found (a detected box whose centre lies inside the
annotated landmarks' bounding box), its landmark NME (mean error / annotated outer-eye-corner distance, 300-W)
and the two confidences fds has per face at run time: the detector's score (``DetectedFace.score``; HOG's SVM
margin for ``hog0``/``hog1``, mmod's score for ``cnn``: different scales) and the fit's mean landmark reprojection
error relative to the face's size (:func:`fds.proxy.quality.relative_fit_error`).

The criterion, fixed before any of this was measured (the one the exposure thresholds use): warn where the
*typical* face's NME is at least twice the median NME of the photos as taken. For each confidence the found
faces of all copies are pooled and cut into 20 bins of equal count (its 5 %-quantiles); the threshold is the
edge of the outermost run of bins, from the bad end inward, whose median NME is each ≥ 2× that baseline (bad
end: high relative fit error, low detector score). A detector kind with fewer than 100 found faces gets no
threshold. Each confidence with a threshold warns on its own (either one suffices).

Decided after measuring (docs/bench_confidence.md says why and what it costs): fds warns on the detector score
only; the relative fit error is measured and tabled but not used.

    .venv/bin/python benchmarks/landmark_confidence.py [--out docs/bench_confidence.md]

Per-copy rows are kept in ``--rows`` (JSON) so the tables can be rebuilt without re-running the detector.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr
from skimage.filters import gaussian
from skimage.transform import AffineTransform, warp

from fds.assets import shared_data_dir
from fds.proxy.landmarks import OUTER_EYE_CORNERS, FaceDetector, NoFaceError, load_image, nme, read_pts
from fds.proxy.quality import confidence_warnings, exposure_warnings, relative_fit_error, simulate_exposure
from fds.proxy.stage import ProxyStage

ROOT = Path(__file__).resolve().parents[1]
FAIL_NME = 0.08  # 300-W's failure threshold (normalised by the outer-eye-corner distance)
RATIO = 2.0  # the criterion: typical NME at least twice that of the photos as taken
N_BINS = 20
MIN_FACES = 100  # per detector kind, for a score threshold

Degrade = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]  # (image, gt [68, 2]) → same


def _eye_distance(gt: np.ndarray) -> float:
    return float(np.linalg.norm(gt[OUTER_EYE_CORNERS[0]] - gt[OUTER_EYE_CORNERS[1]]))


def _cover(image: np.ndarray, x0: float, y0: float, x1: float, y1: float, grey: int) -> np.ndarray:
    h, w = image.shape[:2]
    out = image.copy()
    xa, xb = int(np.clip(np.floor(x0), 0, w)), int(np.clip(np.ceil(x1) + 1, 0, w))
    ya, yb = int(np.clip(np.floor(y0), 0, h)), int(np.clip(np.ceil(y1) + 1, 0, h))
    out[ya:yb, xa:xb] = grey
    return out


def blur(s: float) -> Degrade:
    def f(image, gt):
        sigma = s * _eye_distance(gt)
        return np.round(gaussian(image, sigma, channel_axis=-1, preserve_range=True)).astype(np.uint8), gt
    return f


def glasses(image, gt):
    """Brows' lower edge to below the eyes, a dark box (sunglasses)."""
    d, eyes = _eye_distance(gt), gt[36:48]
    x0, y0 = eyes.min(0) - 0.25 * d
    x1, y1 = eyes.max(0) + 0.25 * d
    return _cover(image, x0, y0, x1, y1, 20), gt


def mask(image, gt):
    """From the middle of the nose down to below the chin, jaw to jaw, a light box (a face mask)."""
    d = _eye_distance(gt)
    jaw = gt[0:17]
    return _cover(image, jaw[:, 0].min(), gt[29, 1], jaw[:, 0].max(), jaw[:, 1].max() + 0.1 * d, 220), gt


def hand(image, gt):
    """The face's half left of the nose line (image left), brows to chin, a mid-grey box."""
    d = _eye_distance(gt)
    x1 = float(gt[27:31, 0].mean())
    return _cover(image, gt[:, 0].min() - 0.1 * d, gt[17:27, 1].min() - 0.2 * d, x1,
                  gt[:, 1].max() + 0.1 * d, 128), gt


def rotate(deg: float) -> Degrade:
    """In-plane rotation about the image centre (0-based pixel centres), canvas grown to hold every pixel."""
    def f(image, gt):
        h, w = image.shape[:2]
        a = np.deg2rad(deg)
        r = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
        corners = np.array([[0, 0], [w - 1, 0], [0, h - 1], [w - 1, h - 1]], np.float64) - [(w - 1) / 2, (h - 1) / 2]
        rc = corners @ r.T
        size = np.ceil(rc.max(0) - rc.min(0)).astype(int) + 1  # (W', H')
        m = np.eye(3)
        m[:2, :2] = r
        m[:2, 2] = (size - 1) / 2 - r @ [(w - 1) / 2, (h - 1) / 2]
        t = AffineTransform(matrix=m)  # input (x, y) → output (x, y)
        out = warp(image, t.inverse, output_shape=(int(size[1]), int(size[0])), order=1, preserve_range=True)
        return np.round(out).astype(np.uint8), t(gt).astype(np.float32)
    return f


def conditions() -> dict[str, Degrade]:
    c: dict[str, Degrade] = {"original": lambda image, gt: (image, gt)}
    for ev in (-7, -6, -5, -4, -3, -2, 2, 3, 4, 5):
        c[f"ev{ev:+d}"] = lambda image, gt, ev=ev: (simulate_exposure(image, ev), gt)
    for s in (0.05, 0.1, 0.2):
        c[f"blur_{s:g}"] = blur(s)
    c |= {"glasses": glasses, "mask": mask, "hand": hand}
    for deg in (30, 45, 60):
        c[f"rot_{deg}"] = rotate(deg)
    return c


def annotated_face(detector: FaceDetector, image: np.ndarray, gt: np.ndarray) -> tuple[tuple | None, list]:
    """The detection ``(box_px, score, detector kind)`` of the annotated face (its box centre inside the annotated
    landmarks' bounding box, the nearest to their mean if several; None if none), and every detection."""
    try:
        boxes = detector.select(detector.detect_boxes(image), all_faces=True)
    except NoFaceError:
        return None, []
    lo, hi = gt.min(0), gt.max(0)
    centres = [(b[0][:2] + b[0][2:]) / 2 for b in boxes]
    inside = [(b, c) for b, c in zip(boxes, centres, strict=True) if np.all((c >= lo) & (c <= hi))]
    if not inside:
        return None, boxes
    return min(inside, key=lambda bc: float(np.linalg.norm(bc[1] - gt.mean(0))))[0], boxes


def measure(photos: list[Path], names: list[str], rows_path: Path) -> list[dict]:
    rows = json.loads(rows_path.read_text()) if rows_path.is_file() else []
    done = {(r["photo"], r["condition"]) for r in rows}
    stage = ProxyStage()  # infer's proxy config (configs/proxy/default.yaml)
    degrade = conditions()
    for photo in photos:
        gt0, image0 = read_pts(photo.with_suffix(".pts")), load_image(photo)
        for name in names:
            if (photo.name, name) in done:
                continue
            image, gt = degrade[name](image0, gt0)
            row = {"photo": photo.name, "condition": name, "found": False}
            found, boxes = annotated_face(stage.detector, image, gt)
            if found is not None:
                box, score, det = found
                face = stage.fit_face(image, box)
                row.update(found=True, nme=nme(face.landmarks_px, gt), score=score, detector=det,
                           reprojection_error_px=face.fit.reprojection_error_px,
                           fit_error=relative_fit_error(face.landmarks_px, face.fit.reprojection_error_px),
                           exposure_warning=bool(exposure_warnings(image, face.landmarks_px)))
            elif boxes:
                row["other_face"] = True
            rows.append(row)
            print(json.dumps(row), flush=True)
        rows_path.parent.mkdir(parents=True, exist_ok=True)
        rows_path.write_text(json.dumps(rows))
    return rows


def threshold(values: np.ndarray, nmes: np.ndarray, baseline: float, higher_is_worse: bool
              ) -> tuple[float | None, list[tuple[float, float, int, float, float]]]:
    """The criterion of the module doc: (threshold or None, bins as (lo, hi, faces, median NME, failed share))
    ordered from the bad end inward."""
    edges = np.quantile(values, np.linspace(0, 1, N_BINS + 1))
    bins = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        sel = (values >= lo) & ((values < hi) | (hi == edges[-1]))
        if sel.any():
            bins.append((float(lo), float(hi), int(sel.sum()), float(np.median(nmes[sel])),
                         float(np.mean(nmes[sel] > FAIL_NME))))
    if higher_is_worse:
        bins = bins[::-1]
    thr = None
    for lo, hi, _, med, _ in bins:
        if med < RATIO * baseline:
            break
        thr = lo if higher_is_worse else hi
    return thr, bins


def bin_table(title: str, bins, baseline: float, thr: float | None, higher_is_worse: bool) -> str:
    bins = bins if not higher_is_worse else bins[::-1]
    lines = [f"| {title} | faces | median NME | × as taken ({baseline:.3f}) | NME > 0.08 |",
             "|---|---:|---:|---:|---:|"]
    for lo, hi, n, med, fail in bins:
        mark = " **warn**" if thr is not None and (lo >= thr if higher_is_worse else hi <= thr) else ""
        lines.append(f"| [{lo:.4g}, {hi:.4g}){mark} | {n} | {med:.3f} | {med / baseline:.2f} | {fail:.0%} |")
    return "\n".join(lines)


def report(rows: list[dict], names: list[str]) -> str:
    found = [r for r in rows if r["found"]]
    baseline = float(np.median([r["nme"] for r in found if r["condition"] == "original"]))
    parts = []
    fit_thr, fit_bins = threshold(np.array([r["fit_error"] for r in found]), np.array([r["nme"] for r in found]),
                                  baseline, True)
    parts.append("## Binned by the relative fit error (all copies pooled, 5 %-quantile bins)\n\n"
                 + bin_table("fit error / face size", fit_bins, baseline, fit_thr, True)
                 + f"\n\nThreshold by the criterion: {'none' if fit_thr is None else f'{fit_thr:.4f}'}")
    score_thr: dict[str, float | None] = {}
    for det in ("hog0", "hog1", "cnn"):
        rs = [r for r in found if r["detector"] == det]
        if len(rs) < MIN_FACES:
            parts.append(f"## Detector score, {det}: {len(rs)} faces (< {MIN_FACES}), no threshold")
            score_thr[det] = None
            continue
        thr, bins = threshold(np.array([r["score"] for r in rs]), np.array([r["nme"] for r in rs]), baseline, False)
        score_thr[det] = thr
        parts.append(f"## Binned by the detector score, {det} ({len(rs)} faces, 5 %-quantile bins)\n\n"
                     + bin_table(f"{det} score", bins, baseline, thr, False)
                     + f"\n\nThreshold by the criterion: {'none' if thr is None else f'{thr:.4f}'}")

    def by_score(r: dict) -> bool:  # what fds warns on, with its thresholds (the ones above, rounded)
        return bool(confidence_warnings(r["detector"], r["score"]))

    def warned(r: dict) -> bool:  # the plan stated before measuring: either confidence
        t = score_thr.get(r["detector"])
        return (fit_thr is not None and r["fit_error"] >= fit_thr) or (t is not None and r["score"] < t)

    lines = ["| condition | photos | face found | median NME | × as taken | NME > 0.08 | median fit error | "
             "warned (fit) | warned (any) | warned (score) | score: warned of NME > 0.08 | "
             "score: warned of NME ≤ 0.08 | exposure warning |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name in names:
        rs = [r for r in rows if r["condition"] == name]
        fs = [r for r in rs if r["found"]]
        if not rs:
            continue
        if not fs:
            lines.append(f"| {name} | {len(rs)} | 0% | | | | | | | | | | |")
            continue
        n = np.array([r["nme"] for r in fs])
        fe = np.array([r["fit_error"] for r in fs])
        w_fit = np.array([fit_thr is not None and r["fit_error"] >= fit_thr for r in fs])
        w = np.array([warned(r) for r in fs])
        ws = np.array([by_score(r) for r in fs])
        bad = n > FAIL_NME

        def share(sel: np.ndarray, of: np.ndarray) -> str:
            return f"{sel[of].sum()}/{of.sum()}"

        lines.append(f"| {name} | {len(rs)} | {len(fs) / len(rs):.0%} | {np.median(n):.3f} | "
                     f"{np.median(n) / baseline:.2f} | {bad.mean():.0%} | {np.median(fe):.4f} | {w_fit.sum()} | "
                     f"{w.sum()} | {ws.sum()} | {share(ws, bad)} | {share(ws, ~bad)} | "
                     f"{sum(r['exposure_warning'] for r in fs)} |")
    all_n = np.array([r["nme"] for r in found])
    taken = np.array([r["condition"] == "original" for r in found])
    summaries = []
    for what, rule in (("either confidence (fit error or score)", warned),
                       ("the detector score (as fds does)", by_score)):
        w = np.array([rule(r) for r in found])
        d, bad = ~taken, all_n > FAIL_NME
        summaries.append(
            f"- Warned by {what}: {w[taken].sum()} of {taken.sum()} photos as taken; of the degraded copies "
            f"{w[d].sum()} of {d.sum()} found faces, median NME {np.median(all_n[w & d]):.3f} "
            f"({np.median(all_n[w & d]) / baseline:.2f}×, {np.mean(bad[w & d]):.0%} fail) against "
            f"{np.median(all_n[~w & d]):.3f} ({np.median(all_n[~w & d]) / baseline:.2f}×, {np.mean(bad[~w & d]):.0%} "
            f"fail) for the others; {w[d & bad].sum()} of the {(d & bad).sum()} failed copies warned.")
    hog0 = [r for r in found if r["detector"] == "hog0"]
    summaries.append(
        "- Spearman rank correlation with the NME over the found faces: relative fit error "
        f"{spearmanr([r['fit_error'] for r in found], all_n).statistic:+.2f} ({len(found)} faces), hog0 score "
        f"{spearmanr([r['score'] for r in hog0], [r['nme'] for r in hog0]).statistic:+.2f} ({len(hog0)} faces).")
    return "\n\n".join(["## Per copy\n\n" + "\n".join(lines), "\n".join(summaries), *parts])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conditions", nargs="+", default=list(conditions()))
    parser.add_argument("--max-photos", type=int, default=0)
    parser.add_argument("--rows", type=Path, default=ROOT / "logs" / "bench_confidence_rows.json")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    labelled = shared_data_dir() / "faces" / "labelled"
    photos = sorted(p for p in labelled.iterdir() if p.suffix in (".jpg", ".png") and p.with_suffix(".pts").is_file())
    photos = photos[: args.max_photos or None]
    t = time.perf_counter()
    rows = measure(photos, args.conditions, args.rows)
    rows = [r for r in rows if r["condition"] in args.conditions and r["photo"] in {p.name for p in photos}]
    text = "\n\n".join([
        f"{len(photos)} labelled photos × {len(args.conditions)} copies, measured in {time.perf_counter() - t:.0f} s "
        f"on {platform.processor() or platform.machine()} ({os.cpu_count()} cores)",
        report(rows, args.conditions),
    ])
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
