"""The viewer in a real browser: headless Chromium (software WebGL) draws a real inference output.

Chromium is a system package (Debian: ``apt-get install chromium``; .ci/run installs it); this test installs
nothing and is skipped with that reason when it is absent. The page must work offline: every request it
makes goes to the viewer on localhost.
"""

from __future__ import annotations

import socket
import time

import numpy as np
import pytest

from fds.view.browser import HeadlessChromium, find_chromium

pytestmark = pytest.mark.slow

W, H = 1280, 800


@pytest.fixture(scope="module")
def chromium() -> str:
    path = find_chromium()
    if path is None:
        pytest.skip("Chromium is not installed (Debian: apt-get install chromium; CI's .ci/run installs it)")
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(predicate, what: str, timeout_s: float = 120.0, step_s: float = 0.5):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value is not None and value is not False:
            return value
        time.sleep(step_s)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def _frame(browser: HeadlessChromium, background: np.ndarray, region: tuple[slice, slice],
           previous: np.ndarray | None = None) -> np.ndarray:
    """A screenshot once the scene is drawn in ``region``, differs there from ``previous`` (the frame before a
    change: the new meshes have arrived and been parsed) and two consecutive frames agree there."""
    state = {"last": None, "changed": previous is None}

    def ready():
        shot = browser.screenshot()
        crop = shot[region].astype(int)
        drawn = (np.abs(crop - background).sum(-1) > 30).mean() > 0.3
        if previous is not None and not np.array_equal(crop, previous[region].astype(int)):
            state["changed"] = True
        same = state["last"] is not None and np.array_equal(crop, state["last"])
        state["last"] = crop
        return shot if drawn and same and state["changed"] else None

    what = "the face to be drawn" + (" and to change" if previous is not None else "") + " and the frame to settle"
    return _wait(ready, what, step_s=1.0)


def test_viewer_draws_proxy_and_detail_in_chromium(chromium, hopper_output, tmp_path):
    from fds.view.app import FaceViewer

    viewer = FaceViewer(hopper_output, port=_free_port())
    try:
        with HeadlessChromium(W, H, executable=chromium) as browser:
            browser.navigate(f"http://127.0.0.1:{viewer.port}/")
            _wait(lambda: viewer.server.get_clients() or None, "the page to connect to the viewer")
            client = next(iter(viewer.server.get_clients().values()))
            viewer.set_colour("clay")  # shading only: the difference between the meshes is their geometry
            viewer.set_light(60.0, 30.0)  # grazing light brings out relief
            viewer.set_mode("proxy")

            # where the face must be: project the display mesh with the camera the viewer set
            face = viewer._faces[viewer.face]
            mesh = face.mesh
            cam_x, _, cam_z = (float(c) for c in client.camera.position)  # looking straight down −z
            f_px = (H / 2) / np.tan(float(client.camera.fov) / 2)
            v = mesh.vertices(0.0)
            depth = cam_z - v[:, 2]
            px = np.stack([W / 2 + f_px * (v[:, 0] - cam_x) / depth, H / 2 - f_px * v[:, 1] / depth], 1)
            front = mesh.normals[:, 2] > 0.6  # facing the camera: not hidden behind the nose or cheeks
            inside = (px[:, 0] > 2) & (px[:, 0] < W - 3) & (px[:, 1] > 2) & (px[:, 1] < H - 3)
            lo, hi = px[inside].min(0).astype(int), px[inside].max(0).astype(int)
            region = (slice(lo[1], hi[1]), slice(lo[0], hi[0]))
            background = browser.screenshot()[H // 2, 5].astype(int)  # the left edge, outside the face's box
            assert lo[0] > 40, "the face must leave a background strip on the left"

            proxy = _frame(browser, background, region)
            viewer.set_mode("detailed")
            detailed = _frame(browser, background, region, previous=proxy)
            viewer.set_scale(0.0)
            flat = _frame(browser, background, region, previous=detailed)
            viewer.set_scale(1.0)

            for name, shot in (("proxy", proxy), ("detailed", detailed), ("flat", flat)):
                from PIL import Image

                Image.fromarray(shot).save(tmp_path / f"{name}.png")

            # 1. the face is drawn where the projection puts it, and nothing is drawn left of it
            pts = np.round(px[front & inside]).astype(int)
            drawn = np.abs(proxy[pts[:, 1], pts[:, 0]].astype(int) - background).sum(-1) > 30
            assert drawn.mean() > 0.95, f"only {drawn.mean():.0%} of the face's front is drawn"
            strip = proxy[max(lo[1], 200):hi[1], 5:lo[0] - 20].astype(int)  # below viser's software-WebGL notice
            assert (np.abs(strip - background).sum(-1) <= 30).mean() > 0.98

            # 2. detail changes the picture where the displacement is largest, not where it is ~0
            def local_diff(a, b, idx):
                p = np.round(px[idx]).astype(int)
                d = np.abs(a.astype(int) - b.astype(int)).sum(-1)
                return np.array([d[y - 1:y + 2, x - 1:x + 2].mean() for x, y in p])

            mag = np.abs(mesh.disp_mm)
            cand = front & inside & (mag > 0)
            top = cand & (mag >= np.quantile(mag[cand], 0.98))
            low = cand & (mag <= np.quantile(mag[cand], 0.25))
            d_top, d_low = local_diff(proxy, detailed, top).mean(), local_diff(proxy, detailed, low).mean()
            assert d_top > 3.0 and d_top > 2.0 * d_low, (d_top, d_low)
            # the scale slider at 0 gives the proxy's surface back
            assert local_diff(proxy, flat, top).mean() < 0.25 * d_top

            # 3. offline: every request went to the viewer (or stayed inside the page)
            outside = [u for u in browser.requests
                       if not u.startswith((f"http://127.0.0.1:{viewer.port}", f"ws://127.0.0.1:{viewer.port}",
                                            "data:", "blob:", "about:"))]
            assert not outside, outside
    finally:
        viewer.stop()
