"""The viewer on a real inference output: time to the first drawn frame in headless Chromium (software WebGL),
display density (``fds view``'s default) against the files' full density (the baseline), in the same run.

    python benchmarks/bench_view.py OUT_DIR/FACE [--budgets 450000 2000000]

Per budget: server-side preparation (read the face, rebuild the displaced mesh, encode the GLB), then from
page navigation until the face is drawn and two consecutive screenshots agree (both include the page load,
the WebSocket transfer, the glTF parse and SwiftShader's first frames). Needs Chromium (apt-get install
chromium).
"""

from __future__ import annotations

import argparse
import socket
import time

import numpy as np


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure(folder: str, budget: int, width: int = 1280, height: int = 800, timeout_s: float = 600) -> dict:
    from fds.view.app import FaceViewer
    from fds.view.browser import HeadlessChromium

    t0 = time.perf_counter()
    viewer = FaceViewer(folder, port=_free_port(), max_triangles=budget)
    prepared = time.perf_counter() - t0
    triangles = len(viewer._faces[viewer.face].mesh.triangles)
    try:
        with HeadlessChromium(width, height) as browser:
            t1 = time.perf_counter()
            browser.navigate(f"http://127.0.0.1:{viewer.port}/")
            background = np.array([255, 255, 255])
            last, drawn_at = None, None
            while time.perf_counter() - t1 < timeout_s:
                shot = browser.screenshot()[height // 4: 3 * height // 4, width // 3: 2 * width // 3].astype(int)
                drawn = (np.abs(shot - background).sum(-1) > 30).mean() > 0.3
                if drawn and drawn_at is None:
                    drawn_at = time.perf_counter() - t1
                if drawn and last is not None and np.array_equal(shot, last):
                    break
                last = shot
                time.sleep(0.5)
            settled = time.perf_counter() - t1
    finally:
        viewer.stop()
    return {"budget": budget, "triangles": triangles, "prepare_s": prepared, "first_drawn_s": drawn_at,
            "settled_s": settled}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder")
    parser.add_argument("--budgets", type=int, nargs="+", default=[450_000, 2_000_000])
    args = parser.parse_args()
    rows = [measure(args.folder, b) for b in args.budgets]
    base = rows[-1]
    print("| display budget | triangles | prepare (s) | first drawn (s) | settled (s) | settled vs full |")
    print("|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        first = r["first_drawn_s"] or float("nan")
        print(f"| {r['budget']:,} | {r['triangles']:,} | {r['prepare_s']:.1f} | {first:.1f}"
              f" | {r['settled_s']:.1f} | {r['settled_s'] / base['settled_s']:.2f}× |")


if __name__ == "__main__":
    main()
