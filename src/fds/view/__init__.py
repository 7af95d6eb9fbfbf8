"""``fds view OUT_DIR`` / ``python -m fds.view OUT_DIR``: an interactive 3D view of an inference run in the
browser (a local, offline ``viser`` server).

- :mod:`fds.view.faces`: the run's face folders → display meshes (decimated by fewer subdivisions), overlays;
- :mod:`fds.view.app`: the viser scene and controls (:class:`~fds.view.app.FaceViewer`);
- :mod:`fds.view.browser`: headless Chromium over the DevTools protocol (screenshots for tests and docs).
"""

from __future__ import annotations

import argparse
import logging

EXAMPLE = """example:
  fds infer photo.jpg -o out/
  fds view out/                 # then open http://127.0.0.1:8080 in a browser
  fds view out/photo --port 8090"""


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(prog="python -m fds.view")
    parser.description = ("Serve an interactive, offline 3D view of an inference output on localhost: proxy and "
                          "detailed mesh side by side or toggled, orbit/zoom, light direction, photo texture, "
                          "normal-map and displacement heat-map colours, a displacement scale slider, and each "
                          "face's numbers from result.json.")
    parser.epilog = EXAMPLE
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("folder", help="an inference output folder (all its faces) or one face's folder")
    parser.add_argument("--port", type=int, default=8080, help="port to serve on (default 8080; taken → next free)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="interface to listen on (default 127.0.0.1: this machine only)")
    parser.add_argument("--max-triangles", type=int, default=None,
                        help="display mesh budget per face (default 450000; the files are not changed)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run(args)


def run(args: argparse.Namespace) -> int:
    from fds.view.app import serve
    from fds.view.faces import DISPLAY_MAX_TRIANGLES

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        serve(args.folder, host=args.host, port=args.port, max_triangles=args.max_triangles or DISPLAY_MAX_TRIANGLES)
    except (FileNotFoundError, ValueError) as exc:
        print(f"fds view: {exc}")
        return 2
    return 0
