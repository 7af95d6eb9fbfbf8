"""Benchmark fds.render: rasterize + interpolate + backward, batch 4, on spheres of ~7k / 28k / 106k triangles.

    python benchmarks/bench_render.py                    # CPU (torch backend), all sizes
    python benchmarks/bench_render.py --device cuda      # GPU: torch and nvdiffrast backends
    python benchmarks/bench_render.py --res 256 512 --repeats 3

Prints a Markdown table of medians in milliseconds (after one warm-up run per configuration).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from fds.render import interpolate, rasterize, uv_sphere

MESHES = {"7k": (60, 60), "28k": (120, 120), "106k": (230, 230)}  # (n_lat, n_lon) → 7,080 / 28,560 / 105,340


def _scene(n_lat: int, n_lon: int, batch: int, device: torch.device):
    v, t, _ = uv_sphere(n_lat, n_lon)
    clips = []
    for i in range(batch):
        a = torch.tensor(0.2 * i)
        rot = torch.tensor([[a.cos(), 0, a.sin()], [0, 1, 0], [-a.sin(), 0, a.cos()]])
        p = v @ rot.T * 0.8
        clips.append(torch.stack([p[:, 0], -p[:, 1], -0.5 * p[:, 2], torch.ones(len(p))], -1))
    return torch.stack(clips).to(device), t.to(device)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_one(pos, tri, res: int, backend: str, repeats: int) -> dict[str, float]:
    device = pos.device
    attr = torch.rand(pos.shape[0], pos.shape[1], 3, device=device)
    times: dict[str, list[float]] = {"rasterize": [], "interpolate": [], "backward": []}
    covered = 0.0
    for rep in range(repeats + 1):
        p = pos.clone().requires_grad_(True)
        a = attr.clone().requires_grad_(True)
        _sync(device)
        t0 = time.perf_counter()
        rast = rasterize(p, tri, (res, res), backend=backend)
        _sync(device)
        t1 = time.perf_counter()
        out = interpolate(a, rast, tri, backend=backend)
        _sync(device)
        t2 = time.perf_counter()
        out.square().sum().backward()
        _sync(device)
        t3 = time.perf_counter()
        if rep > 0:  # the first run is a warm-up
            times["rasterize"].append(t1 - t0)
            times["interpolate"].append(t2 - t1)
            times["backward"].append(t3 - t2)
        covered = float((rast[..., 3] > 0).float().mean())
    med = {k: 1e3 * statistics.median(v) for k, v in times.items()}
    med["total"] = sum(med.values())
    med["covered"] = covered
    return med


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--backends", nargs="*", default=None, help="default: torch (CPU), torch + nvdiffrast (CUDA)")
    ap.add_argument("--meshes", nargs="*", default=list(MESHES))
    ap.add_argument("--res", nargs="*", type=int, default=[256, 512, 1024])
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    backends = args.backends or (["torch", "nvdiffrast"] if device.type == "cuda" else ["torch"])
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    print(
        f"device: {device} ({name}), torch {torch.__version__}, threads {torch.get_num_threads()}, "
        f"batch {args.batch}, median of {args.repeats} after 1 warm-up"
    )
    print("| backend | triangles | resolution | rasterize ms | interpolate ms | backward ms | total ms | covered |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for backend in backends:
        for mesh in args.meshes:
            pos, tri = _scene(*MESHES[mesh], args.batch, device)
            for res in args.res:
                m = run_one(pos, tri, res, backend, args.repeats)
                print(
                    f"| {backend} | {tri.shape[0]:,} | {res}² | {m['rasterize']:.3g} | {m['interpolate']:.3g} | "
                    f"{m['backward']:.3g} | {m['total']:.3g} | {m['covered']:.2f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
