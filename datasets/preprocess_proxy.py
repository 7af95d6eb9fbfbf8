"""Preprocess a folder of photos into the proxy cache (landmarks, expression prior, eos fit, UV texture).

    python datasets/preprocess_proxy.py PHOTOS_DIR --cache CACHE_DIR [--workers 2] [fit.num_iterations=3 ...]

Trailing ``key=value`` arguments override ``configs/proxy/default.yaml`` (OmegaConf dot-list syntax).
Prints one line per failed image and a summary; exit status 0 only if every image got a proxy.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from omegaconf import OmegaConf

from fds.proxy.stage import run_folder

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "proxy" / "default.yaml"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input_dir", type=Path, help="folder of photos (searched recursively)")
    parser.add_argument("--cache", type=Path, required=True, help="proxy cache folder (created if missing)")
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="proxy config YAML")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("overrides", nargs="*", help="config overrides, e.g. expression.mode=fix")
    args = parser.parse_intermixed_args(argv)
    if not args.input_dir.is_dir():
        parser.error(f"input_dir {args.input_dir} is not a folder")
    cfg = OmegaConf.merge(OmegaConf.load(args.config), OmegaConf.from_dotlist(args.overrides))
    summary = run_folder(
        args.input_dir,
        args.cache,
        OmegaConf.to_container(cfg, resolve=True),
        num_workers=args.workers,
        progress=not args.no_progress,
    )
    print(summary.format())
    print(f"summary written to {args.cache / 'summary.json'}")
    return 0 if summary.ok else 1


if __name__ == "__main__":
    sys.exit(main())
