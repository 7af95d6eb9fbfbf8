"""Where a run's outputs go: safe folder names, one run at a time per ``output=``, whole photo folders or none.

- :func:`safe_name` turns a photo's stem into one folder name: no ``.``/``..``, no separators, no control or
  reserved characters, bounded length; :func:`unique_names` numbers repeats (``a``, ``a_2`` …).
- :class:`OutputFolder` holds ``output=`` for one run: it checks the folder is usable before any work (else
  :class:`OutputError`), takes an exclusive lock (a second run into the same folder gets
  :class:`OutputLockedError` at once; the OS drops the lock when a run dies, so a killed run never blocks the
  next), clears the temporary folders a killed run left, and writes every photo into temporary folders inside
  ``output=`` that are renamed into place only when the photo is complete. Every path it hands out is checked to
  stay inside ``output=``. A folder that holds *another* photo's outputs (its ``result.json`` names a different
  image) is never replaced: the new photo gets the next free number.
- :meth:`OutputFolder.write_summary` keeps ``summary.json`` a description of the whole folder across runs: this
  run's records replace those of the same photos (:func:`merge_summary`), earlier runs' other records stay, and
  every record names the run that wrote it.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import shutil
import socket
import tempfile
import time
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from fds.fileio import atomic_folder, atomic_write_bytes

__all__ = ["OutputError", "OutputLockedError", "OutputFolder", "merge_summary", "safe_name", "unique_names"]

log = logging.getLogger(__name__)
LOCK_NAME = ".fds-run.lock"
SUMMARY_NAME = "summary.json"
# summary.json's record lists and the key that names each record's input (a photo, or an entry that is not one)
SUMMARY_KEYS = {"succeeded": "image", "failed": "image", "skipped": "path"}
MAX_NAME_BYTES = 96  # leaves room for "_face7", "_123" and atomic_folder's ".<name>.xxxxxxxx.part" within 255
_FORBIDDEN = set('/\\:*?"<>|')  # separators and the characters Windows refuses in names
_RESERVED = re.compile(r"(con|prn|aux|nul|com[0-9]|lpt[0-9])(\..*)?", re.IGNORECASE)  # Windows device names


class OutputError(RuntimeError):
    """``output=`` cannot be used (not a folder, not writable): a configuration problem, found before any work."""


class OutputLockedError(OutputError):
    """Another run holds ``output=``."""


def safe_name(stem: str) -> str:
    """One safe folder name for a photo stem (never empty, ``.``, ``..``, hidden or with a separator).

    Control and format characters, separators and ``:*?"<>|`` become ``_``; leading and trailing dots and
    spaces are dropped; Windows device names get a ``_`` suffix; the name is cut to 96 UTF-8 bytes.

    >>> safe_name(".."), safe_name("a/b\\tc"), safe_name(" .hidden"), safe_name("CON")
    ('photo', 'a_b_c', 'hidden', 'CON_')
    """
    name = unicodedata.normalize("NFC", stem)
    name = "".join("_" if c in _FORBIDDEN or unicodedata.category(c) in ("Cc", "Cf", "Cs", "Zl", "Zp") else c
                   for c in name)
    name = name.strip(" .")
    if _RESERVED.fullmatch(name):
        name += "_"
    encoded = name.encode("utf-8")
    if len(encoded) > MAX_NAME_BYTES:
        name = encoded[:MAX_NAME_BYTES].decode("utf-8", errors="ignore").rstrip(" .")
    return name or "photo"


def unique_names(paths: Sequence[Path]) -> dict[Path, str]:
    """One output folder name per photo: its :func:`safe_name`, made unique (``_2``, ``_3`` …) when names repeat
    (``a.jpg`` and ``a.png``, the same file name in two folders, names equal but for case), so no photo
    overwrites another's outputs; names that equal another photo's extra-face folders (``x_face1``) count too."""
    names: dict[Path, str] = {}
    used: set[str] = set()

    def taken(name: str) -> bool:
        key = name.casefold()
        return key in used or any(key == f"{u}_face{i}" for u in used for i in range(1, 9))

    for p in paths:
        base = safe_name(p.stem)
        name, k = base, 1
        while taken(name):
            k += 1
            name = f"{base}_{k}"
        used.add(name.casefold())
        names[p] = name
    return names


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def merge_summary(old: dict | None, new: dict, run_id: str, kept: Callable[[dict], bool] = lambda r: True) -> dict:
    """``summary.json`` after a run: ``new`` (this run's ``checkpoint`` and record lists, :data:`SUMMARY_KEYS`)
    with each record stamped ``"run": run_id``, after the records of ``old`` (an earlier summary, valid or None)
    that this run did not redo: an old record goes when this run has a record for the same input (path), when
    it lists an output folder (by name) this run wrote, or when ``kept(record)`` is false (e.g. its folders are gone).
    An earlier success stays beside this run's failure of the same photo while its folders exist (a failed rerun
    writes nothing, so those folders are still the earlier run's result, and the record says which run that was).
    Records of fds versions before run ids get ``"run": None``. ``runs`` maps each run id still referenced to
    its checkpoint and end time; ``checkpoint`` is the latest run's."""
    stamped = {k: [{**r, "run": run_id} for r in new.get(k, [])] for k in SUMMARY_KEYS}
    redone = {r[key] for k, key in SUMMARY_KEYS.items() for r in stamped[k]}
    succeeded = {r["image"] for r in stamped["succeeded"]}
    written = {Path(o).name for r in stamped["succeeded"] for o in r.get("outputs", [])}
    merged: dict = {k: [] for k in SUMMARY_KEYS}
    for k, key in SUMMARY_KEYS.items():
        for r in (old or {}).get(k, []):
            gone = r[key] in (succeeded if k == "succeeded" else redone)
            if not gone and not written & {Path(o).name for o in r.get("outputs", [])} and kept(r):
                merged[k].append({**r, "run": r.get("run")})
        merged[k] += stamped[k]
    runs = dict((old or {}).get("runs", {}))
    runs[run_id] = {"checkpoint": new.get("checkpoint"), "finished": _now()}
    used = {r["run"] for k in SUMMARY_KEYS for r in merged[k]} | {run_id}
    return {"checkpoint": new.get("checkpoint"), "runs": {i: v for i, v in runs.items() if i in used}, **merged}


def _valid_summary(data: object) -> bool:
    """``data`` has the shape :func:`merge_summary` relies on (records are dicts naming their input)."""
    if not isinstance(data, dict) or not isinstance(data.get("runs", {}), dict):
        return False
    for k, key in SUMMARY_KEYS.items():
        records = data.get(k, [])
        if not isinstance(records, list) or not all(
                isinstance(r, dict) and isinstance(r.get(key), str) and isinstance(r.get("outputs", []), list)
                and isinstance(r.get("run"), str | None) for r in records):
            return False
    return True


def _holder(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        return os.read(fd, 200).decode(errors="replace").strip() or "another process"
    except OSError:
        return "another process"


class OutputFolder:
    """One run's hold on ``output=`` (see the module doc). Use as a context manager, or :meth:`open` /
    :meth:`close`."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(os.path.abspath(Path(root).expanduser()))
        self._fd: int | None = None
        self.run_id = ""  # when this run took the folder (ISO 8601, UTC): names its records in summary.json

    # ------------------------------------------------------------------------------------------- lifetime
    @property
    def is_open(self) -> bool:
        return self._fd is not None

    def open(self) -> OutputFolder:
        """Create/check the folder, take the lock, clear leftovers of killed runs. Raises :class:`OutputError`."""
        if self._fd is not None:
            return self
        where = f"output={self.root}"
        if self.root.exists() and not self.root.is_dir():
            raise OutputError(f"{where} is a file, not a folder: choose a folder for the results")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.root / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise OutputError(f"{where} cannot be created or written ({exc.strerror or exc}): choose a "
                              "writable folder") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _holder(fd)
            os.close(fd)
            raise OutputLockedError(f"{where} is in use by another fds run ({holder}): wait for it to finish "
                                    "or choose another output=") from None
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%H:%M:%S')}".encode())
            with tempfile.NamedTemporaryFile(dir=self.root, prefix=".fds-probe.", suffix=".part") as probe:
                probe.write(b"x")
                probe.flush()
        except OSError as exc:
            os.close(fd)
            raise OutputError(f"{where} is not writable ({exc.strerror or exc}): choose a writable folder") from None
        self._fd = fd
        self.run_id = _now()
        self._clear_leftovers()
        return self

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # releases the lock
            self._fd = None

    def __enter__(self) -> OutputFolder:
        return self.open()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _clear_leftovers(self) -> None:
        """Temporary folders and files of runs that were killed (only this run can be writing here now)."""
        for p in self.root.glob(".*"):
            if p.name.endswith((".part", ".old")):
                if p.is_dir() and not p.is_symlink():
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    p.unlink(missing_ok=True)

    # --------------------------------------------------------------------------------------------- paths
    def child(self, name: str) -> Path:
        """``output=/name``, checked to be one plain name that stays inside ``output=``."""
        if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name or name != safe_name(name):
            raise ValueError(f"{name!r} is not a safe output name")
        path = self.root / name
        if os.path.realpath(path.parent) != os.path.realpath(self.root):
            raise ValueError(f"{path} is not inside output={self.root}")
        return path

    def owner(self, name: str) -> str | None:
        """Who a folder's outputs belong to: its ``result.json`` image SHA-1 (``"?"`` for a folder that is not
        a photo's outputs, None when absent)."""
        folder = self.root / name
        if not os.path.lexists(folder):
            return None
        try:
            info = json.loads((folder / "result.json").read_text())
            return str(info["image_sha1"])
        except (OSError, ValueError, KeyError, TypeError):
            return "?"

    def claim(self, name: str, image_sha1: str, reserved: set[str]) -> str:
        """``name``, or the next free ``name_<k>`` when ``name`` holds another photo's outputs. ``reserved``:
        the names given to the run's other photos (never taken here)."""
        base, k = name, 1
        reserved_keys = {r.casefold() for r in reserved} - {name.casefold()}
        while name.casefold() in reserved_keys or self.owner(name) not in (None, image_sha1):
            k += 1
            name = f"{base}_{k}"
        return name

    @contextmanager
    def photo(self, names: Sequence[str], image_sha1: str) -> Iterator[list[Path]]:
        """Temporary folders inside ``output=`` for one photo's faces; when the block succeeds each is renamed
        onto its name (replacing an earlier run's outputs of the same photo), when it fails all are removed."""
        for name in names[1:]:
            if self.owner(name) not in (None, image_sha1):
                raise FileExistsError(f"{self.child(name)} holds another photo's outputs: not replaced (move it "
                                      "or choose another output=)")
        with ExitStack() as stack:
            tmps = [stack.enter_context(atomic_folder(self.child(n))) for n in names]
            try:
                yield tmps
            except OSError as exc:  # name the file where it would have been, not its temporary folder
                where = str(exc.filename or "")
                for tmp, name in zip(tmps, names, strict=True):
                    where = where.replace(str(tmp), str(self.root / name))
                raise OSError(exc.errno, exc.strerror or str(exc), where or None) from exc
        base = names[0]
        for k in range(len(names), 9):  # extra faces an earlier run of the same photo found and this one did not
            stale = f"{base}_face{k}"
            if self.owner(stale) == image_sha1:
                shutil.rmtree(self.root / stale, ignore_errors=True)

    def write_summary(self, summary: dict) -> Path:
        """``summary.json`` = the one already here merged with this run's (:func:`merge_summary`), written
        atomically. Earlier records whose output folders are all gone are dropped; an unreadable or corrupt
        ``summary.json`` is logged and replaced by this run's records."""
        path = self.child(SUMMARY_NAME)
        old = None
        if os.path.lexists(path):
            try:
                old = json.loads(path.read_text(encoding="utf-8"))
                if not _valid_summary(old):
                    raise ValueError("not an fds summary (unexpected structure)")
            except (OSError, ValueError) as exc:
                log.warning("%s is unreadable or corrupt (%s): replacing it with this run's records only", path, exc)
                old = None

        def kept(record: dict) -> bool:
            outputs = record.get("outputs", [])
            return not outputs or any((self.root / Path(o).name).is_dir() for o in outputs)

        return self.write_json(SUMMARY_NAME, merge_summary(old, summary, self.run_id or _now(), kept))

    def write_json(self, name: str, data: Any) -> Path:
        path = self.child(name)
        atomic_write_bytes(path, [json.dumps(data, indent=2).encode()])
        return path
