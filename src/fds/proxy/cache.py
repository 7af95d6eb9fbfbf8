"""The proxy cache: one folder per (photo content, proxy config), written whole or not at all, checked on read.

Layout of an entry ``<cache_dir>/<image sha1[:16]>-<config hash[:12]>/``:

- ``face<k>.npz``: every array of face ``k``'s :class:`~fds.proxy.stage.ProxyResult` at full precision (the UV
  texture, visibility and the float32 confidence included), so a result read back equals the computed one
  bit for bit;
- ``face<k>.json``: its scalars, names and timings (JSON floats round-trip exactly);
- ``done.json``: format version, number of faces, the photo's SHA-1, the entry key, and the SHA-256 of every
  file above. It is written last, inside a temporary folder renamed into place (:func:`fds.fileio.atomic_folder`).

Both face files are flat: the fit's and the unwrap's fields sit beside the result's own, under the names in
:data:`ARRAYS` and :data:`SCALARS` (the unwrap's ``texture`` as ``uv_texture``). Photo-scan samples keep their
proxy in the same two files (``proxy/face0.*``), so this layout is a file format: change it only with a new
``CACHE_VERSION``. Files of version 2 (before ``detector_score``) still load, with ``detector_score`` None; the
cache itself only uses entries of its own version.

An entry is keyed and validated by content only: it remembers no path (a result read from it names the photo it
was asked for), and it is used only when ``done.json`` names this photo's SHA-1 and this key and every file has
its recorded checksum. :func:`read_entry` raises :class:`CacheEntryError` for anything else (truncated, edited,
from an older fds); the stage then logs it, recomputes and replaces the entry.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, cast

import numpy as np

from fds.fileio import atomic_folder
from fds.proxy.fit import FitResult
from fds.proxy.unwrap import UnwrapResult

# a ProxyResult (fds.proxy.stage builds on this module, so the class is passed in, never imported here)
ProxyResult = Any
R = TypeVar("R")

__all__ = ["ARRAYS", "CACHE_VERSION", "SCALARS", "CacheEntryError", "read_entry", "write_entry", "save_result",
           "load_result"]

CACHE_VERSION = 3  # 3: the detector's score is stored (``detector_score``); files of version 2 lack only that
# stored name → (part of the ProxyResult: "" itself, "fit" or "uv"; field name there)
ARRAYS = {"box_px": ("", "box_px"), "landmarks_px": ("", "landmarks_px"), "prior_expr": ("", "prior_expr"),
          **{k: ("fit", k) for k in ("vertices_mm", "id_coeffs", "expr_coeffs", "rotation", "translation_mm",
                                     "modelview", "projection", "landmark_error_px")},
          "uv_texture": ("uv", "texture"), "visibility": ("uv", "visibility"), "confidence": ("uv", "confidence")}
SCALARS = {**{k: ("", k) for k in ("image_sha1", "face_index", "detector", "detector_score", "emotion_probs",
                                   "expression_mode", "face_model", "timings_s")},
           **{k: ("fit", k) for k in ("image_size", "scale_px_per_mm", "yaw_pitch_roll_deg", "reprojection_error_px")}}
_TUPLES = ("image_size", "yaw_pitch_roll_deg")  # JSON lists read back as the tuples they were
_ADDED_IN_3 = {"detector_score"}  # absent from version-2 files (photo-scan samples): read back as None
# the entry is the photo's content, not where it was: ``image_path`` is not stored


class CacheEntryError(ValueError):
    """A cache entry is incomplete, corrupt, from another fds version or for another photo."""


def _jsonable(o: Any):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(type(o).__name__)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _stored(result: ProxyResult, names: dict[str, tuple[str, str]]) -> dict[str, Any]:
    return {k: getattr(getattr(result, part) if part else result, name) for k, (part, name) in names.items()}


def save_result(result: ProxyResult, folder: Path) -> list[Path]:
    """Write ``face<k>.npz`` and ``face<k>.json`` of one face into ``folder``; returns the files."""
    stem = Path(folder) / f"face{result.face_index}"
    np.savez_compressed(f"{stem}.npz", **_stored(result, ARRAYS))
    Path(f"{stem}.json").write_text(json.dumps(_stored(result, SCALARS), indent=1, default=_jsonable))
    return [Path(f"{stem}.npz"), Path(f"{stem}.json")]


def load_result(folder: Path, result_type: Callable[..., R], face_index: int = 0, image_path: str = "") -> R:
    """Face ``face_index`` of an entry (files as :func:`save_result` writes them) as a ``result_type``
    (:class:`fds.proxy.stage.ProxyResult`), naming ``image_path``."""
    stem = Path(folder) / f"face{face_index}"
    scalars = json.loads(Path(f"{stem}.json").read_text())
    if isinstance(scalars, dict) and set(scalars) == set(SCALARS) - _ADDED_IN_3:
        scalars |= dict.fromkeys(_ADDED_IN_3)
    if not isinstance(scalars, dict) or set(scalars) != set(SCALARS):
        raise ValueError(f"{stem}.json holds {sorted(scalars) if isinstance(scalars, dict) else type(scalars)}, "
                         f"not the proxy fields {sorted(SCALARS)}")
    for k in _TUPLES:
        scalars[k] = tuple(scalars[k])
    with np.load(f"{stem}.npz", allow_pickle=False) as z:
        stored = {**scalars, **{k: z[k] for k in ARRAYS}}
    parts: dict[str, dict[str, Any]] = {"": {}, "fit": {}, "uv": {}}
    for k, (part, name) in {**ARRAYS, **SCALARS}.items():
        parts[part][name] = stored[k]
    return result_type(image_path=image_path, fit=FitResult(**parts["fit"]), uv=UnwrapResult(**parts["uv"]),
                       **parts[""])


def write_entry(folder: Path, results: list[ProxyResult], image_sha1: str) -> None:
    """The whole entry of one photo, atomically (replacing an invalid one)."""
    with atomic_folder(folder) as tmp:
        files = [f for r in results for f in save_result(r, tmp)]
        done = {"version": CACHE_VERSION, "num_faces": len(results), "image_sha1": image_sha1, "key": folder.name,
                "files": {f.name: _sha256(f) for f in files}}
        (tmp / "done.json").write_text(json.dumps(done, indent=1))


def read_entry(folder: Path, image_sha1: str, image_path: str, result_type: Callable[..., R]) -> list[R] | None:
    """The cached results of the photo ``image_sha1`` (None when there is no entry); raises
    :class:`CacheEntryError` saying what is wrong with an entry that exists but cannot be trusted."""
    if not folder.exists():
        return None
    try:
        done = json.loads((folder / "done.json").read_text())
    except (OSError, ValueError) as exc:
        raise CacheEntryError(f"done.json unreadable ({exc})") from None
    if not isinstance(done, dict) or done.get("version") != CACHE_VERSION:
        version = done.get("version") if isinstance(done, dict) else "?"
        raise CacheEntryError(f"written by another fds version ({version}, this fds writes {CACHE_VERSION})")
    if done.get("image_sha1") != image_sha1 or done.get("key") != folder.name:
        raise CacheEntryError("belongs to another photo or configuration")
    files, n = done.get("files"), done.get("num_faces")
    expected = {f"face{k}.{ext}" for k in range(n) for ext in ("npz", "json")} if isinstance(n, int) else None
    if not isinstance(files, dict) or expected is None or set(files) != expected:
        raise CacheEntryError("done.json lists the wrong files")
    for name, digest in files.items():
        try:
            ok = _sha256(folder / name) == digest
        except OSError as exc:
            raise CacheEntryError(f"{name} unreadable ({exc.strerror or exc})") from None
        if not ok:
            raise CacheEntryError(f"{name} does not match its checksum (truncated or changed)")
    try:
        return [load_result(folder, result_type, k, image_path) for k in range(cast(int, n))]  # an int: checked above
    except Exception as exc:  # checksums matched but the content does not parse: still an unusable entry
        raise CacheEntryError(f"unreadable ({type(exc).__name__}: {exc})") from None
