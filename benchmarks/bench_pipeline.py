"""Seconds per face through the inference pipeline, default (fast) paths against the plain reference paths
(today's implementation before issue 17) and against the paper-size network, all in the same run.

    .venv/bin/python benchmarks/bench_pipeline.py [--resolutions 1024 4096] [--out docs/bench_pipeline.md]

One photo (matplotlib's grace_hopper), the shipped checkpoint, a warm process (each path runs once untimed
first). Stages:

- proxy: the proxy stage, uncached (detect, landmarks, emotion, fit, unwrap);
- detail: the network pass and stitching. Fast: BN-folded channels-last copy, shared windows once, flip-averaged
  on half-patch strides (the default); reference: the module itself, every zone's windows, flip-averaged on the
  paper's quarter-patch grid (the default before issue 17);
- maps: normal maps + the map files (displacement PNG/JSON/EXR/NPY, two normal PNGs, texture, proxy OBJ).
  Fast: ``DetailPipeline.write_face`` itself, whose writer threads encode the files while the next outputs are
  computed, so its maps/mesh/preview rows are time on the main thread and ``files`` the time spent waiting for
  the writers; reference: each file written in turn (``files`` 0);
- mesh: bake + mesh files. Fast: 431k triangles as glb (the default); reference: 1.72M triangles as OBJ + PLY
  with the line-by-line OBJ writer;
- preview: the four-panel strip. Fast: one proxy raster shaded with the object normal map; reference: the
  proxy and the baked mesh rendered.

The paper-size network (``model=paper``) is timed per 256² patch on random input and extrapolated to the
3,439 patches of a 4096² paper-density grid, as the paper's pipeline would need.

Folder throughput (``--sections folder``): the first ``--folder-photos`` labelled photos of the data kit (20 by
default) through ``DetailPipeline.run`` (defaults, no proxy cache, the model loaded once), one photo after the
other (``workers=0``) and with the next photos' proxies computed by ``--workers`` processes, in the same run, after
an untimed warm-up photo: images/s, the ratio, peak memory of the run's processes sampled from /proc (RSS of the
main process; RSS and PSS summed over it, the proxy workers and their fork server: RSS counts shared pages once
per process, PSS splits them) and whether both runs wrote the same bytes (``result.json`` aside: it has timings).

    .venv/bin/python benchmarks/bench_pipeline.py --sections folder --folder-photos 20 --workers 1

``--folder-baseline`` first runs the folder once more with the inference settings before 2026-12-07 (one network
pass on the paper's quarter-patch grid; the same model, switched in place), so the default's images/s and memory
have a baseline from the same run.

On a machine without dlib's landmark model (the GPU check), ``--proxy-cache DIR`` reads every proxy from an fds
proxy cache made elsewhere (the proxy row is then that read) and ``--folder-dir`` names the folder's photos.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import os
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path

import matplotlib.cbook
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from machine import describe

from fds.assets import shared_data_dir
from fds.demo import SHIPPED_CHECKPOINT
from fds.detail import DetailPredictor
from fds.export import mesh_io
from fds.export.maps import encode_normal_map, write_displacement, write_normal_map, write_png
from fds.export.mesh_io import write_baked, write_obj_reference
from fds.export.normal_maps import normal_maps_reference
from fds.export.previews import (
    render_detailed,
    render_proxy,
    write_preview,
)
from fds.mesh.bake import bake_displacement
from fds.mesh.meshdata import MeshData
from fds.pipeline import DetailPipeline, DetailSettings, face_crop_view
from fds.proxy.stage import IMAGE_SUFFIXES

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("proxy", "detail", "maps", "mesh", "preview", "files")
# fast = the defaults; in turn = the defaults with each file written in turn (export.writer_threads=0);
# reference = the plain paths the fast ones replaced
KINDS = ("fast", "in turn", "reference")


def per_patch_seconds(module, n: int, channels: int = 1, batch: int = 8) -> float:
    """Median seconds per 256² patch of ``module``'s network on random input of its ``channels`` input channels."""
    device = next(module.parameters()).device
    x = torch.randn(batch, channels, 256, 256, device=device)
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
    """Seconds per stage and MB per output file of one face, by the fast or the reference paths. The fast path
    is the pipeline's own ``write_face`` (files encoded on writer threads while the next outputs are computed:
    its ``files`` stage is the time spent waiting for them); the reference path writes each file in turn."""
    fm, s, t = pipe.stage.face_model, pipe.settings, {}
    out.mkdir(parents=True, exist_ok=True)
    if fast:
        times = pipe.write_face(result, out)["timings_s"]
        t = {"detail": times["detail"], "maps": times["maps"], "mesh": times["bake"], "preview": times["preview"],
             "files": times["files"]}
        sizes = {p.name: p.stat().st_size / 1e6 for p in sorted(out.iterdir())
                 if p.is_file() and p.name != "result.json"}
        return t, sizes
    t0 = time.perf_counter()
    predictor = DetailPredictor(
        pipe.predictor.module, fm, batch_size=s.batch_size, flip_average=True, resolution=s.resolution, fused=False,
        shared_windows=False, patch_stride=pipe.predictor.meta.patch_size // 4)  # the paper's grid
    detail = predictor(result)
    disp, coverage = detail.displacement_mm, detail.coverage
    t["detail"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    proxy = MeshData(result.fit.vertices_mm, fm.triangles, fm.uv, fm.uv_triangles)
    write_png(out / "texture.png", result.uv.texture)
    write_obj_reference(out / "proxy.obj", proxy, texture="texture.png")
    write_displacement(out / "displacement", disp, pipe.disp_scale_mm, coverage=coverage)
    maps = normal_maps_reference(disp, result.fit.vertices_mm, fm.triangles, fm.uv, fm.uv_triangles, coverage,
                                 min(s.resolution, 1024))
    write_normal_map(out / "normal_tangent.png", maps.tangent, "tangent", maps.coverage)
    write_normal_map(out / "normal_object.png", maps.object, "object", maps.coverage)
    t["maps"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    baked = bake_displacement(proxy, disp, max_triangles=2_000_000)
    writer, mesh_io.write_obj = mesh_io.write_obj, write_obj_reference
    try:
        write_baked(out / "detailed", baked, texture="texture.png", formats=("obj", "ply"))
    finally:
        mesh_io.write_obj = writer
    t["mesh"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    crop, view = face_crop_view(result, s.preview_height)
    proxy_img, detail_img = render_proxy(proxy, view), render_detailed(baked, view)
    panel = encode_normal_map(maps.tangent, maps.coverage, (0.0, 0.0, 1.0))
    write_preview(out / "preview.png", crop, proxy_img, detail_img, panel, height=s.preview_height)
    t["preview"] = time.perf_counter() - t0
    t["files"] = 0.0  # each file was written in its stage
    sizes = {p.name: p.stat().st_size / 1e6 for p in sorted(out.iterdir()) if p.is_file()}
    return t, sizes


# ----------------------------------------------------------------------------------------- folder throughput
def folder_photos(n: int, folder: Path | None = None) -> list[Path]:
    """The first ``n`` (by name) photos of ``folder`` (default the data kit's labelled photos: one or more faces
    each, 150–2000 px)."""
    folder = folder or shared_data_dir() / "faces" / "labelled"
    photos = sorted(p for p in folder.glob("*") if p.suffix.lower() in IMAGE_SUFFIXES) if folder.is_dir() else []
    if len(photos) < n:
        raise SystemExit(f"the folder benchmark needs {n} photos in {folder}; found {len(photos)}")
    return photos[:n]


def _descendants(pid: int) -> set[int]:
    found: set[int] = set()
    todo = [pid]
    while todo:
        for task in Path(f"/proc/{todo.pop()}/task").glob("*"):
            try:
                kids = {int(k) for k in (task / "children").read_text().split()} - found
            except OSError:
                continue
            found |= kids
            todo += kids
    return found


class TreeMemory:
    """Peak memory, bytes, of this process and its descendants, sampled every ``every_s`` seconds from
    ``/proc/<pid>/smaps_rollup`` (Linux; a peak shorter than the interval can be missed): ``main_rss``, ``rss``
    (summed over the processes) and ``pss`` (summed; shared pages split between their processes)."""

    def __init__(self, every_s: float = 0.1):
        self.every_s = every_s
        self.peak = {"main_rss": 0, "rss": 0, "pss": 0}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True, name="bench-memory")

    def __enter__(self) -> TreeMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _watch(self) -> None:
        while True:
            self.sample()
            if self._stop.wait(self.every_s):
                return

    def sample(self) -> None:
        me = os.getpid()
        total = {"main_rss": 0, "rss": 0, "pss": 0}
        for pid in (me, *_descendants(me)):
            try:
                lines = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]
            except OSError:
                continue  # it has just exited
            kb = {ln.split(":")[0]: int(ln.split()[1]) * 1024 for ln in lines if ln.endswith(" kB")}
            total["rss"] += kb.get("Rss", 0)
            total["pss"] += kb.get("Pss", 0)
            if pid == me:
                total["main_rss"] = kb.get("Rss", 0)
        self.peak = {k: max(v, total[k]) for k, v in self.peak.items()}


def _digests(out: Path) -> dict[str, str]:
    """SHA-1 of every output file but ``result.json`` (its timings differ run to run)."""
    return {p.relative_to(out).as_posix(): hashlib.sha1(p.read_bytes()).hexdigest() for p in sorted(out.rglob("*"))
            if p.is_file() and p.name not in ("result.json", "summary.json", ".fds-run.lock")}


def folder_section(args: argparse.Namespace) -> list[str]:
    photos = folder_photos(args.folder_photos, args.folder_dir)
    pipe = DetailPipeline(args.ckpt, cache_dir=args.proxy_cache, device=args.device,
                          settings=DetailSettings(resolution=args.folder_resolution))
    runs: dict[str, dict] = {}
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        pipe.run(photos[-1:], Path(tmp) / "warm", workers=0)  # libraries, dlib and emotion models loaded
        plan = [("sequential", 0, False), (f"prefetch, {args.workers} worker(s)", args.workers, False)]
        if args.folder_baseline:  # the inference settings before 2026-12-07, same process and model
            plan.insert(0, ("sequential, the paper's grid in one pass", 0, True))
        for name, workers, paper_grid in plan:
            out = Path(tmp) / name.replace(" ", "_").replace(",", "").replace("'", "")
            default = (pipe.predictor.flip_average, pipe.predictor.patch_stride)
            if paper_grid:
                pipe.predictor.flip_average, pipe.predictor.patch_stride = False, pipe.predictor.meta.patch_size // 4
            with TreeMemory() as mem:
                t0 = time.perf_counter()
                outcomes = pipe.run(photos, out, workers=workers)
                wall = time.perf_counter() - t0
            pipe.predictor.flip_average, pipe.predictor.patch_stride = default
            runs[name] = {"wall": wall, "failed": sum(not o.ok for o in outcomes), "peak": mem.peak,
                          "digests": _digests(out)}
            shutil.rmtree(out)
            print(name, f"{wall:.1f} s", {k: f"{v / 1e9:.2f} GB" for k, v in mem.peak.items()}, flush=True)
    load_after = os.getloadavg()
    base = runs["sequential"]
    n, gb = len(photos), 1e9
    lines = ["## Folder throughput", "",
             f"Machine: {describe(args.device)}; load average {load_before[0]:.1f} before, {load_after[0]:.1f} after. "
             f"{n} photos (the first {n} by name of {args.folder_dir or 'the labelled photos of the data kit'}), "
             f"detail.resolution={args.folder_resolution}, defaults otherwise, {_proxy_words(args)}, model loaded "
             "once, after a warm-up photo. Memory sampled every 0.1 s.", "",
             "| run | wall, s | images/s | vs sequential | peak RSS main, GB | peak RSS all processes, GB "
             "| peak PSS all processes, GB | failed | same files as sequential |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for name, r in runs.items():
        same = ("–" if r is base else "– (other settings)" if "paper's grid" in name else
                "yes" if r["digests"] == base["digests"] else "**no**")
        lines.append(f"| {name} | {r['wall']:.1f} | {n / r['wall']:.3f} | {base['wall'] / r['wall']:.2f}× | "
                     f"{r['peak']['main_rss'] / gb:.2f} | {r['peak']['rss'] / gb:.2f} | {r['peak']['pss'] / gb:.2f} | "
                     f"{r['failed']} | {same} |")
    return lines


def _times(ratio: float) -> str:
    """A ratio as ``"206×"``, or with two significant digits below 10 (``"0.19×"``: the GPU's paper network)."""
    return f"{ratio:.0f}×" if ratio >= 10 else f"{ratio:.2g}×"


def _proxy_words(args: argparse.Namespace) -> str:
    if args.proxy_cache is None:
        return "no proxy cache (the proxy stage runs in full)"
    return (f"proxies read from the cache {args.proxy_cache} made on another machine (the proxy row is that read; "
            "this machine has no landmark model)")


# ------------------------------------------------------------------------------------------- per stage
def stages_section(args: argparse.Namespace) -> list[str]:
    load_before = os.getloadavg()
    photo = Path(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    rows: dict[tuple[int, str], dict[str, float]] = {}
    sizes: dict[tuple[int, str], dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for res in args.resolutions:
            pipe = DetailPipeline(args.ckpt, cache_dir=args.proxy_cache, device=args.device,
                                  settings=DetailSettings(resolution=res))
            t0 = time.perf_counter()
            result = pipe.stage(photo)[0]
            proxy_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            result = pipe.stage(photo)[0]  # warm
            proxy_s = min(proxy_s, time.perf_counter() - t0)
            for kind in KINDS:
                pipe.settings = dataclasses.replace(pipe.settings, writer_threads=0 if kind == "in turn" else
                                                    DetailSettings.writer_threads)
                one_face(pipe, result, Path(tmp) / f"warm{res}{kind}", kind != "reference")  # warm-up
                t, sz = one_face(pipe, result, Path(tmp) / f"r{res}{kind}", kind != "reference")
                rows[res, kind], sizes[res, kind] = {"proxy": proxy_s, **t}, sz
                print(res, kind, {k: round(v, 2) for k, v in rows[res, kind].items()}, flush=True)
    lite = DetailPipeline(args.ckpt, cache_dir=None, device=args.device)
    with initialize_config_dir(version_base="1.3", config_dir=str(ROOT / "configs")):
        paper = instantiate(compose(config_name="train", overrides=["model=paper"]).model).eval().to(args.device)
    paper_patch = per_patch_seconds(paper, args.patches)
    paper_4096 = paper_patch * 3439
    cin = lite.predictor.meta.in_channels  # the default reads V, the shading cue and the photo scale
    sec = {"lite, reference module": per_patch_seconds(lite.predictor.module, args.patches, cin),
           "lite, fast copy (default)": per_patch_seconds(lite.predictor.network, args.patches, cin),
           "paper": paper_patch}
    load_after = os.getloadavg()

    cols = [(r, k) for r in args.resolutions for k in KINDS]
    lines = [
        "## Seconds per face", "",
        f"Machine: {describe(args.device)}; load average {load_before[0]:.1f} before, {load_after[0]:.1f} after the "
        "run (other jobs share the cores: compare rows of one run). One photo (grace_hopper), shipped checkpoint, "
        f"warm process, {_proxy_words(args)}, seconds per face.", "",
        "| stage | " + " | ".join(f"{r}² {k}" for r, k in cols) + " |", "|---|" + "---:|" * len(cols)]
    for s in (*STAGES, "total"):
        vals = [sum(rows[c].values()) if s == "total" else rows[c][s] for c in cols]
        lines.append(f"| {s} | " + " | ".join(f"{v:.2f}" for v in vals) + " |")
    for base in ("in turn", "reference"):
        lines.append(f"| {base} / fast | " + " | ".join(
            f"{sum(rows[r, base].values()) / sum(rows[r, 'fast'].values()):.2f}×" if k == "fast" else ""
            for r, k in cols) + " |")
    lines.append("| paper network, 4096² grid / total | " + " | ".join(
        _times(paper_4096 / sum(rows[c].values())) for c in cols) + " |")
    lines += ["", "Output sizes, MB per face (fast = the defaults: glb with 431k triangles; in turn = the same "
              "files, written one after the other; reference = the former defaults: OBJ + PLY with 1.72M "
              "triangles):", "",
              "| file | " + " | ".join(f"{r}² {k}" for r, k in cols) + " |", "|---|" + "---:|" * len(cols)]
    names = sorted({n for c in cols for n in sizes[c]})
    for n in names:
        lines.append(f"| {n} | " + " | ".join(f"{sizes[c].get(n, 0):.2f}" if n in sizes[c] else "–"
                                              for c in cols) + " |")
    lines.append("| **total** | " + " | ".join(f"**{sum(sizes[c].values()):.1f}**" for c in cols) + " |")
    lines += ["", "Detail network alone, same run, 256² patches, batch 8:", "",
              "| network | s per patch | 4096² paper-density grid (3,439 patches), s |", "|---|---:|---:|"]
    for name, s in sec.items():
        lines.append(f"| {name} | {s:.3g} | {s * 3439:.3g} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", nargs="+", choices=("stages", "folder"), default=["stages", "folder"])
    parser.add_argument("--resolutions", type=int, nargs="+", default=[1024, 4096])
    parser.add_argument("--patches", type=int, default=16)
    parser.add_argument("--folder-photos", type=int, default=20)
    parser.add_argument("--folder-resolution", type=int, default=1024)
    parser.add_argument("--workers", type=int, default=1, help="proxy worker processes of the prefetch run")
    parser.add_argument("--folder-baseline", action="store_true",
                        help="also run the folder with the former inference settings (one pass, the paper's grid)")
    parser.add_argument("--ckpt", default=str(SHIPPED_CHECKPOINT))
    parser.add_argument("--out", default=str(ROOT / "docs" / "bench_pipeline.md"))
    parser.add_argument("--device", default="cpu",
                        help="cpu | cuda (the network, normal maps and preview; bake and files on the CPU)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (the CI machine has 2 cores)")
    parser.add_argument("--folder-dir", type=Path, default=None,
                        help="photos of the folder section (default the data kit's labelled photos)")
    parser.add_argument("--proxy-cache", type=Path, default=None,
                        help="read proxies from this fds proxy cache (for a machine without the landmark model, "
                             "e.g. the GPU check); default: none, every proxy is computed and timed")
    args = parser.parse_args()
    torch.set_num_threads(min(args.threads, os.cpu_count() or 1))
    lines = ["# Inference pipeline (`benchmarks/bench_pipeline.py`)", ""]
    if "folder" in args.sections:  # first: its memory figures are not inflated by the 4096² runs
        lines += folder_section(args) + [""]
    if "stages" in args.sections:
        lines += stages_section(args)
    text = "\n".join(lines) + "\n"
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
