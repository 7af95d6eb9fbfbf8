"""Seconds per face through the inference pipeline, default (fast) paths against the plain reference paths
(today's implementation before issue 17) and against the paper-size network, all in the same run.

    .venv/bin/python benchmarks/bench_pipeline.py [--resolutions 1024 4096] [--out docs/bench_pipeline.md]

One photo (matplotlib's grace_hopper), the shipped checkpoint, a warm process (each path runs once untimed
first). Stages:

- proxy: the proxy stage, uncached (detect, landmarks, emotion, fit, unwrap);
- detail: the network pass and stitching. Fast: BN-folded channels-last copy, shared windows once, no flip
  (the default); reference: the module itself, every zone's windows, flip-averaged (the former default);
- maps: normal maps + the map files (displacement PNG/JSON/NPY, two normal PNGs, texture, proxy OBJ);
- mesh: bake + mesh files. Fast: 431k triangles as glb (the default); reference: 1.72M triangles as OBJ + PLY
  with the line-by-line OBJ writer;
- preview: the four-panel strip. Fast: one proxy raster shaded with the object normal map; reference: the
  proxy and the baked mesh rendered.

The paper-size network (``model=paper``) is timed per 256² patch on random input and extrapolated to the
3,439 patches of a 4096² paper-density grid, as the paper's pipeline would need.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import matplotlib.cbook
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from fds.demo import SHIPPED_CHECKPOINT
from fds.detail import DetailPredictor
from fds.export import mesh_io
from fds.export.bake import bake_displacement, write_baked
from fds.export.maps import encode_normal_map, write_displacement, write_normal_map, write_png
from fds.export.mesh_io import MeshData, write_obj, write_obj_reference
from fds.export.normal_maps import normal_maps, normal_maps_reference
from fds.export.previews import (
    preview_maps,
    render_detailed,
    render_proxy,
    render_proxy_and_detail,
    write_preview,
)
from fds.pipeline import DetailPipeline, DetailSettings, face_crop_view

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("proxy", "detail", "maps", "mesh", "preview")


def per_patch_seconds(module, n: int, batch: int = 8) -> float:
    device = next(module.parameters()).device
    x = torch.randn(batch, 1, 256, 256, device=device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    with torch.no_grad():
        module.predict_step({"input": x, "region": ["forehead"] * batch}, 0)  # warm-up
        times = []
        for _ in range(max(n // batch, 1)):
            sync()
            t = time.perf_counter()
            module.predict_step({"input": x, "region": ["forehead"] * batch}, 0)
            sync()
            times.append((time.perf_counter() - t) / batch)
    return statistics.median(times)


def one_face(pipe: DetailPipeline, result, out: Path, fast: bool) -> tuple[dict[str, float], dict[str, float]]:
    """Seconds per stage and MB per output file of one face, by the fast or the reference paths."""
    fm, s, t = pipe.stage.face_model, pipe.settings, {}
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    predictor = pipe.predictor if fast else DetailPredictor(
        pipe.predictor.module, fm, batch_size=s.batch_size, flip_average=True, resolution=s.resolution, fused=False,
        shared_windows=False)
    detail = predictor(result)
    disp, coverage = detail.displacement_mm, detail.coverage
    t["detail"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    proxy = MeshData(result.fit.vertices_mm, fm.triangles, fm.uv, fm.uv_triangles)
    write_png(out / "texture.png", result.uv.texture)
    (write_obj if fast else write_obj_reference)(out / "proxy.obj", proxy, texture="texture.png")
    write_displacement(out / "displacement", disp, pipe.disp_scale_mm, coverage=coverage)
    maps = (normal_maps if fast else normal_maps_reference)(disp, result.fit.vertices_mm, fm.triangles, fm.uv,
                                                           fm.uv_triangles, coverage, min(s.resolution, 1024))
    write_normal_map(out / "normal_tangent.png", maps.tangent, "tangent", maps.coverage)
    write_normal_map(out / "normal_object.png", maps.object, "object", maps.coverage)
    t["maps"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    if fast:
        baked = bake_displacement(proxy, disp, max_triangles=s.max_triangles)
        write_baked(out / "detailed", baked, formats=tuple(s.formats),
                    texture_image=(out / "texture.png").read_bytes(),
                    normal_png=(out / "normal_tangent.png").read_bytes(),
                    extra_images={"displacement": ((out / "displacement.png").read_bytes(), {})})
    else:
        baked = bake_displacement(proxy, disp, max_triangles=2_000_000)
        writer, mesh_io.write_obj = mesh_io.write_obj, write_obj_reference
        import fds.export.bake as bake_mod

        bake_mod.write_obj = write_obj_reference
        try:
            write_baked(out / "detailed", baked, texture="texture.png", formats=("obj", "ply"))
        finally:
            mesh_io.write_obj = bake_mod.write_obj = writer
    t["mesh"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    crop, view = face_crop_view(result, s.preview_height)
    if fast:
        small = preview_maps(maps, 1024)
        proxy_img, detail_img = render_proxy_and_detail(proxy, small.object, view)
        panel = encode_normal_map(small.tangent, small.coverage, (0.0, 0.0, 1.0))
    else:
        proxy_img, detail_img = render_proxy(proxy, view), render_detailed(baked, view)
        panel = encode_normal_map(maps.tangent, maps.coverage, (0.0, 0.0, 1.0))
    write_preview(out / "preview.png", crop, proxy_img, detail_img, panel, height=s.preview_height)
    t["preview"] = time.perf_counter() - t0
    sizes = {p.name: p.stat().st_size / 1e6 for p in sorted(out.iterdir()) if p.is_file()}
    return t, sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolutions", type=int, nargs="+", default=[1024, 4096])
    parser.add_argument("--patches", type=int, default=16)
    parser.add_argument("--ckpt", default=str(SHIPPED_CHECKPOINT))
    parser.add_argument("--out", default=str(ROOT / "docs" / "bench_pipeline.md"))
    parser.add_argument("--device", default="cpu", help="cpu | cuda (the network; maps and meshes stay on CPU)")
    args = parser.parse_args()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    load_before = os.getloadavg()
    photo = Path(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    rows: dict[tuple[int, str], dict[str, float]] = {}
    sizes: dict[tuple[int, str], dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for res in args.resolutions:
            pipe = DetailPipeline(args.ckpt, cache_dir=None, device=args.device,
                                  settings=DetailSettings(resolution=res))
            t0 = time.perf_counter()
            result = pipe.stage(photo)[0]
            proxy_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            result = pipe.stage(photo)[0]  # warm
            proxy_s = min(proxy_s, time.perf_counter() - t0)
            for kind in ("fast", "reference"):
                one_face(pipe, result, Path(tmp) / f"warm{res}{kind}", kind == "fast")  # warm-up
                t, sz = one_face(pipe, result, Path(tmp) / f"r{res}{kind}", kind == "fast")
                rows[res, kind], sizes[res, kind] = {"proxy": proxy_s, **t}, sz
                print(res, kind, {k: round(v, 2) for k, v in rows[res, kind].items()}, flush=True)
    lite = DetailPipeline(args.ckpt, cache_dir=None, device=args.device)
    with initialize_config_dir(version_base="1.3", config_dir=str(ROOT / "configs")):
        paper = instantiate(compose(config_name="train", overrides=["model=paper"]).model).eval().to(args.device)
    paper_patch = per_patch_seconds(paper, args.patches)
    paper_4096 = paper_patch * 3439
    sec = {"lite, reference module": per_patch_seconds(lite.predictor.module, args.patches),
           "lite, fast copy (default)": per_patch_seconds(lite.predictor.network, args.patches), "paper": paper_patch}
    load_after = os.getloadavg()

    gpu = torch.cuda.get_device_name(0) if args.device == "cuda" else "no GPU"
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor())
    cols = [(r, k) for r in args.resolutions for k in ("fast", "reference")]
    lines = [
        "# Inference pipeline (`benchmarks/bench_pipeline.py`)", "",
        f"Machine: {cpu}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"{gpu}; load average {load_before[0]:.1f} before, {load_after[0]:.1f} after the run (other jobs share "
        "the cores: compare rows of one run). One photo (grace_hopper), shipped checkpoint, warm process, "
        "seconds per face.", "",
        "| stage | " + " | ".join(f"{r}² {k}" for r, k in cols) + " |", "|---|" + "---:|" * len(cols)]
    for s in (*STAGES, "total"):
        vals = [sum(rows[c].values()) if s == "total" else rows[c][s] for c in cols]
        lines.append(f"| {s} | " + " | ".join(f"{v:.2f}" for v in vals) + " |")
    lines.append("| reference / fast | " + " | ".join(
        f"{sum(rows[r, 'reference'].values()) / sum(rows[r, 'fast'].values()):.1f}×" if k == "fast" else ""
        for r, k in cols) + " |")
    lines.append("| paper network, 4096² grid / total | " + " | ".join(
        f"{paper_4096 / sum(rows[c].values()):.0f}×" for c in cols) + " |")
    lines += ["", "Output sizes, MB per face (fast = the defaults: glb with 431k triangles; reference = the former "
              "defaults: OBJ + PLY with 1.72M triangles):", "",
              "| file | " + " | ".join(f"{r}² {k}" for r, k in cols) + " |", "|---|" + "---:|" * len(cols)]
    names = sorted({n for c in cols for n in sizes[c]})
    for n in names:
        lines.append(f"| {n} | " + " | ".join(f"{sizes[c].get(n, 0):.2f}" if n in sizes[c] else "–"
                                              for c in cols) + " |")
    lines.append("| **total** | " + " | ".join(f"**{sum(sizes[c].values()):.1f}**" for c in cols) + " |")
    lines += ["", "Detail network alone, same run, 256² patches, batch 8:", "",
              "| network | s per patch | 4096² paper-density grid (3,439 patches), s |", "|---|---:|---:|"]
    for name, s in sec.items():
        lines.append(f"| {name} | {s:.4f} | {s * 3439:.0f} |")
    text = "\n".join(lines) + "\n"
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
