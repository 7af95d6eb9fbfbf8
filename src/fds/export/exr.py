"""Single-channel float32 OpenEXR files (the ``OpenEXR`` package, the Academy Software Foundation's bindings).

DCC tools (Blender, Maya, Houdini, Mari, Nuke) read 32-bit EXR displacement maps directly. fds writes one
channel ``Y`` (FLOAT, full 32-bit, not half) of the ``[H, W]`` map with lossless ZIP compression, row 0 = the
top scanline (EXR's data window is y-down, as the UV map's rows are), and a few string attributes naming the
units and the sidecar. Values round-trip bit for bit.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

from fds.fileio import atomic_write_bytes

CHANNEL = "Y"


def _openexr():
    try:
        import OpenEXR
    except ImportError as exc:  # pragma: no cover - a dependency of fds; only broken installs get here
        raise ImportError("writing/reading EXR needs the OpenEXR package: pip install OpenEXR "
                          "(or set detail.float_format=npy)") from exc
    return OpenEXR


def encode_exr(array: np.ndarray, attributes: dict[str, str] | None = None) -> bytes:
    """``float [H, W]`` → the bytes of a ZIP-compressed float32 EXR with one channel ``Y``."""
    oexr = _openexr()
    a = np.ascontiguousarray(np.asarray(array, np.float32))
    if a.ndim != 2:
        raise ValueError(f"EXR maps here are single-channel [H, W], got shape {a.shape}")
    header = {"compression": oexr.ZIP_COMPRESSION, "type": oexr.scanlineimage}
    header.update({str(k): str(v) for k, v in (attributes or {}).items()})
    buf = io.BytesIO()
    with oexr.File(header, {CHANNEL: a}) as f:
        f.write(buf)
    return buf.getvalue()


def write_exr(path: str | os.PathLike, array: np.ndarray, attributes: dict[str, str] | None = None) -> Path:
    """Write ``array [H, W]`` (float32) as ``path`` through a temp file and a rename; ``attributes`` become
    string header attributes."""
    path = Path(path)
    atomic_write_bytes(path, [encode_exr(array, attributes)])
    return path


def read_exr(path: str | os.PathLike) -> tuple[np.ndarray, dict]:
    """An EXR written by :func:`write_exr` → (float32 ``[H, W]``, header dict)."""
    oexr = _openexr()
    path = Path(path)
    with oexr.File(str(path)) as f:
        channels = f.channels()
        if CHANNEL not in channels:
            raise ValueError(f"{path}: no channel {CHANNEL!r} (has {sorted(channels)}); not an fds map")
        pixels = np.asarray(channels[CHANNEL].pixels)
        header = dict(f.header())
    if pixels.dtype != np.float32:
        raise ValueError(f"{path}: channel {CHANNEL!r} is {pixels.dtype}, expected float32")
    return pixels, header
