"""Headless Chromium driven over the DevTools protocol: open a page, wait, take screenshots.

Used by the viewer's browser test and to make documentation images; nothing here downloads anything: it
runs the Chromium found on ``PATH`` (Debian: ``apt-get install chromium``) or in ``FDS_CHROMIUM``. WebGL runs
in software (SwiftShader through ANGLE), so it works without a GPU or a display.
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
    "--no-default-browser-check", "--disable-extensions", "--mute-audio", "--hide-scrollbars",
)


def find_chromium() -> str | None:
    """The Chromium executable: ``FDS_CHROMIUM`` if set, else the first of :data:`CANDIDATES` on PATH."""
    env = os.environ.get("FDS_CHROMIUM")
    if env:
        return env if Path(env).is_file() else shutil.which(env)
    return next((p for p in map(shutil.which, CANDIDATES) if p), None)


class BrowserError(RuntimeError):
    pass


class HeadlessChromium:
    """One headless Chromium with a fresh profile and one page; use as a context manager.

    ``width`` × ``height`` is the page's viewport in CSS px (device scale 1, so screenshots have that size).
    ``requests`` collects every URL the page asked for (to check that a page works offline).
    """

    def __init__(self, width: int = 1280, height: int = 800, executable: str | None = None,
                 start_timeout_s: float = 60.0):
        self.width, self.height = width, height
        found = executable or find_chromium()
        if not found:
            raise BrowserError("no Chromium found: install it (Debian: apt-get install chromium) or set FDS_CHROMIUM")
        self.executable: str = found
        self.start_timeout_s = start_timeout_s
        self.requests: list[str] = []
        self.console: list[str] = []
        self._id = 0
        self._loaded = False
        self._ws: Any = None  # the DevTools websocket while the browser runs
        self._profile: str | None = None  # the temporary Chromium profile folder

    def __enter__(self) -> HeadlessChromium:
        from websockets.sync.client import connect

        self._profile = tempfile.mkdtemp(prefix="fds-chromium-")
        self._proc = subprocess.Popen(
            [self.executable, *FLAGS, f"--user-data-dir={self._profile}", "--remote-debugging-port=0",
             "--remote-debugging-address=127.0.0.1", f"--window-size={self.width},{self.height}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        try:
            port = self._devtools_port()
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
                pages = [t for t in json.load(r) if t.get("type") == "page"]
            if not pages:
                raise BrowserError("Chromium started without a page")
            # no keepalive pings: while software WebGL draws a large mesh the page can leave a ping unanswered
            # for over 20 s, and websockets would then close a healthy local link; call() has its own timeout
            self._ws = connect(pages[0]["webSocketDebuggerUrl"], max_size=None, open_timeout=10,
                               ping_interval=None)
            for domain in ("Page", "Runtime", "Network"):
                self.call(f"{domain}.enable")
            self.call("Emulation.setDeviceMetricsOverride", width=self.width, height=self.height,
                      deviceScaleFactor=1, mobile=False)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _devtools_port(self) -> int:
        marker = Path(str(self._profile)) / "DevToolsActivePort"
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise BrowserError(f"{self.executable} exited with status {self._proc.returncode} at start")
            if marker.is_file():
                lines = marker.read_text().split()
                if lines:
                    return int(lines[0])
            time.sleep(0.1)
        raise BrowserError(f"{self.executable} did not open its DevTools port within {self.start_timeout_s:.0f} s")

    def _event(self, msg: dict) -> None:
        method = msg.get("method", "")
        if method == "Page.loadEventFired":
            self._loaded = True
        elif method == "Network.requestWillBeSent":
            self.requests.append(msg["params"]["request"]["url"])
        elif method == "Runtime.consoleAPICalled":
            args = msg["params"].get("args", [])
            self.console.append(" ".join(str(a.get("value", a.get("description", ""))) for a in args))

    def call(self, method: str, timeout_s: float = 60.0, **params) -> dict:
        """Send one DevTools command and return its ``result`` (events that arrive meanwhile are recorded)."""
        self._id += 1
        self._ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BrowserError(f"{method}: no answer within {timeout_s:.0f} s")
            msg = json.loads(self._ws.recv(timeout=left))
            if msg.get("id") == self._id:
                if "error" in msg:
                    raise BrowserError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self._event(msg)

    def navigate(self, url: str, timeout_s: float = 60.0) -> None:
        """Open ``url`` and wait for its load event."""
        self._loaded = False
        result = self.call("Page.navigate", url=url)
        if result.get("errorText"):
            raise BrowserError(f"{url}: {result['errorText']}")
        deadline = time.monotonic() + timeout_s
        while not self._loaded:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BrowserError(f"{url}: not loaded within {timeout_s:.0f} s")
            self._event(json.loads(self._ws.recv(timeout=left)))

    def evaluate(self, expression: str):
        """The value of a JavaScript expression in the page."""
        r = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            raise BrowserError(f"{expression!r} raised {r['exceptionDetails'].get('text')}")
        return r.get("result", {}).get("value")

    def screenshot(self) -> np.ndarray:
        """The viewport as uint8 RGB ``[height, width, 3]``."""
        from PIL import Image

        data = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=False)["data"]
        with Image.open(io.BytesIO(base64.b64decode(data))) as im:
            return np.array(im.convert("RGB"))

    def close(self) -> None:
        ws = getattr(self, "_ws", None)
        if ws is not None:
            try:
                ws.close()
            except Exception:  # the browser may be gone already
                pass
            self._ws = None
        proc = getattr(self, "_proc", None)
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        profile = getattr(self, "_profile", None)
        if profile:
            shutil.rmtree(profile, ignore_errors=True)
            self._profile = None
