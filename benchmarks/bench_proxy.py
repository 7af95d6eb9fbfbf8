"""Proxy-stage benchmark: per-stage times and landmark NME per labelled photo, folder-runner images/s with
0 vs 2 DataLoader workers, and an example figure. Writes docs/bench_proxy.md and docs/img/proxy_example.png.

    python benchmarks/bench_proxy.py [--runner-images 12] [--resolution 1024]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from machine import describe

from fds.proxy.landmarks import load_image, nme, read_pts
from fds.proxy.stage import ProxyStage, run_folder

ROOT = Path(__file__).resolve().parents[1]


def shared_faces() -> Path:
    return ROOT.parent / "shared" / "data" / "faces"


def per_image(resolution: int) -> list[dict]:
    stage = ProxyStage({"unwrap": {"resolution": resolution}, "all_faces": True})
    rows = []
    for p in sorted(x for x in (shared_faces() / "labelled").iterdir() if x.suffix in (".jpg", ".png")):
        image = load_image(p)
        gt = read_pts(p.with_suffix(".pts"))
        t0 = time.perf_counter()
        try:
            results = stage.process(image, str(p))
        except Exception as e:  # noqa: BLE001
            rows.append({"name": p.stem, "error": f"{type(e).__name__}: {e}"})
            continue
        total = time.perf_counter() - t0
        best = min(results, key=lambda r: nme(r.landmarks_px, gt))  # AFW: score the labelled face
        rows.append(
            {
                "name": p.stem,
                "size": f"{image.shape[1]}×{image.shape[0]}",
                "detector": best.detector,
                "nme": nme(best.landmarks_px, gt),
                "reproj": best.fit.reprojection_error_px,
                "faces": len(results),
                "total": total,
                **best.timings_s,
            }
        )
        print(f"{p.stem:28s} nme={rows[-1]['nme']:.4f} total={total:.2f}s")
    return rows


def runner(n: int, tmp: Path) -> dict[int, float]:
    photos = tmp / "photos"
    photos.mkdir()
    for p in sorted((shared_faces() / "labelled").glob("helen_*.jpg"))[:n]:
        shutil.copy(p, photos / p.name)
    out = {}
    for workers in (0, 2):
        s = run_folder(photos, tmp / f"cache{workers}", {"unwrap": {"resolution": 512}}, workers, progress=False)
        out[workers] = s.num_images / s.wall_s
    return out


def figure(path: Path, resolution: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import PolyCollection

    p = shared_faces() / "labelled" / "image_0010.png"
    stage = ProxyStage({"unwrap": {"resolution": resolution}})
    (r,) = stage.process(load_image(p), str(p))
    image = load_image(p)
    fm = stage.face_model
    proj = r.fit.project(r.fit.vertices_mm)
    x0, y0 = proj.min(0) - 40
    x1, y1 = proj.max(0) + 40
    fig, ax = plt.subplots(1, 3, figsize=(12, 4.2))
    for a in ax:
        a.axis("off")
    ax[0].imshow(image)
    ax[0].set_xlim(x0, x1)
    ax[0].set_ylim(y1, y0)
    ax[0].set_title("photo + dlib landmarks")
    ax[0].scatter(*r.landmarks_px.T, s=4, c="lime")
    ax[1].imshow(image)
    ax[1].add_collection(PolyCollection(proj[fm.triangles], facecolors="none", edgecolors="cyan", linewidths=0.15))
    ax[1].set_xlim(x0, x1)
    ax[1].set_ylim(y1, y0)
    ax[1].set_title(f"SFM proxy (yaw {r.fit.yaw_pitch_roll_deg[0]:.0f}°, {r.fit.reprojection_error_px:.1f} px)")
    ax[2].imshow(np.dstack([r.uv.texture, (r.uv.confidence * 255).astype(np.uint8)]))
    ax[2].set_title("UV texture, alpha = confidence")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    print(f"figure: {path} ({path.stat().st_size / 1024:.0f} KB)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runner-images", type=int, default=12)
    ap.add_argument("--resolution", type=int, default=1024)
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "bench_proxy.md")
    args = ap.parse_args()
    rows = per_image(args.resolution)
    with tempfile.TemporaryDirectory() as tmp:
        ips = runner(args.runner_images, Path(tmp))
    figure(ROOT / "docs" / "img" / "proxy_example.png", 512)
    ok = [r for r in rows if "nme" in r]
    stages = ("detect", "landmarks", "emotion", "fit", "unwrap", "total")
    lines = [
        "# Proxy stage benchmark (`benchmarks/bench_proxy.py`)",
        "",
        f"Machine: {describe()} (shared with other jobs while measured: treat times as upper bounds).",
        f"Config: `configs/proxy/default.yaml` (SFM, HOG→CNN detector, emotion prior mode `init`, "
        f"UV {args.resolution}², torch rasteriser), all faces per photo.",
        "",
        f"Labelled photos: {len(ok)}/{len(rows)} got a proxy. Landmark NME (mean point error / outer-eye-corner "
        f"distance): median {np.median([r['nme'] for r in ok]):.4f}, mean {np.mean([r['nme'] for r in ok]):.4f}, "
        f"max {max(r['nme'] for r in ok):.4f}.",
        "",
        "Median stage times (s): " + ", ".join(f"{s} {np.median([r[s] for r in ok]):.3f}" for s in stages) + ".",
        "",
        f"Folder runner ({args.runner_images} HELEN photos, UV 512²): {ips[0]:.2f} images/s with 0 workers, "
        f"{ips[2]:.2f} images/s with 2 workers (the 0-worker run comes first and also pays one-off model "
        "loading; the machine was shared, so the ratio is indicative only).",
        "Times per photo cover every face in it; `detect` is counted once per photo.",
        "",
        "| photo | size | detector | faces | NME | reproj px | detect s | landmarks s | emotion s | fit s "
        "| unwrap s | total s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "nme" not in r:
            lines.append(f"| {r['name']} | | failed: {r['error']} | | | | | | | | | |")
            continue
        lines.append(
            f"| {r['name']} | {r['size']} | {r['detector']} | {r['faces']} | {r['nme']:.4f} | "
            f"{r['reproj']:.1f} | " + " | ".join(f"{r[s]:.3f}" for s in stages) + " |"
        )
    lines += ["", "![photo, fitted proxy, unwrapped texture](img/proxy_example.png)", ""]
    args.out.write_text("\n".join(lines))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
