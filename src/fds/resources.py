"""Where fds finds the files it ships (configs, checkpoints) and where it keeps its own data, from any folder.

- **configs/** and **checkpoints/** live at the top of the repository (the design keeps them there). In a
  checkout or an editable install they are found beside ``src/``; a wheel carries copies as package data under
  ``fds/_resources/`` (copied at build time by ``setup.py``). ``FDS_CONFIG_DIR`` overrides the config folder.
- **the project root** (``paths.root_dir``: ``data/`` caches and generated scans, ``logs/`` run folders):
  ``FDS_ROOT`` if set, else the checkout of an editable install, else ``$XDG_DATA_HOME/fds``
  (``~/.local/share/fds``) for a wheel. Never the working directory, so ``fds`` run anywhere leaves nothing
  behind but the output folder it was given.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
BUNDLED_DIR = PACKAGE_DIR / "_resources"  # a wheel's copies of configs/ and checkpoints/
SHIPPED_CHECKPOINT = "dfdn_lite.safetensors"


def checkout_root() -> Path | None:
    """The repository checkout this package is imported from (source tree / editable install), else None."""
    root = PACKAGE_DIR.parents[1]
    if (root / "pyproject.toml").is_file() and (root / "configs").is_dir():
        return root
    return None


def _resource_dir(name: str) -> Path:
    for base in (BUNDLED_DIR, checkout_root()):
        if base is not None and (base / name).is_dir():
            return base / name
    raise FileNotFoundError(
        f"fds cannot find its {name}/ folder: neither {BUNDLED_DIR / name} (wheel) nor a checkout beside "
        f"{PACKAGE_DIR} (editable install) exists. Reinstall fds (pip install fds, or pip install -e . in a clone)")


def config_dir() -> Path:
    """The Hydra config tree: ``FDS_CONFIG_DIR``, the wheel's bundled copy, or the checkout's ``configs/``."""
    env = os.environ.get("FDS_CONFIG_DIR")
    return Path(env).expanduser().resolve() if env else _resource_dir("configs")


def checkpoint_dir() -> Path:
    """The shipped checkpoints: the wheel's bundled copy or the checkout's ``checkpoints/``."""
    return _resource_dir("checkpoints")


def shipped_checkpoint(name: str = SHIPPED_CHECKPOINT) -> Path:
    return checkpoint_dir() / name


def project_root() -> Path:
    """``paths.root_dir`` for the ``fds`` command: ``FDS_ROOT``, the checkout, or the user data folder."""
    env = os.environ.get("FDS_ROOT")
    if env:
        return Path(env).expanduser().resolve()
    root = checkout_root()
    if root is not None:
        return root
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "fds"
