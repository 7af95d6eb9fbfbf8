"""What ``input=`` names → the photos to process, and every other entry with its own reason.

A file is taken as given; a folder is walked (into sub-folders unless ``recursive=False``); anything else is a
glob (``**`` recurses). In a folder every entry is looked at: a regular file is a photo when its name says so
(:data:`PHOTO_SUFFIXES`) or Pillow identifies its content; anything else is reported, never silently dropped:
non-images, sub-folders when not recursing, dangling symlinks, symlink loops, special files (fifos, sockets)
and folders that cannot be listed. One bad entry never stops the walk.

Entries named like photos that cannot be read (a dangling ``a.jpg``, a loop) count as *failed photos*; the rest
are *skipped*. Photos are returned resolved (symlinks followed), each once, in walk order (names sorted).
"""

from __future__ import annotations

import errno
import glob
import os
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from fds.proxy.stage import IMAGE_SUFFIXES

__all__ = ["PHOTO_SUFFIXES", "InputEntry", "Inputs", "NoInputError", "expand_inputs"]

#: Names that mean "a photo" even when fds cannot read them (the reason then says why).
PHOTO_SUFFIXES = (*IMAGE_SUFFIXES, ".gif", ".heic", ".heif", ".avif", ".jxl", ".jp2", ".jfif", ".dng")


class NoInputError(FileNotFoundError):
    """``input=`` names no photo at all (a configuration problem, found before any work)."""


@dataclass(frozen=True)
class InputEntry:
    """An entry that is not processed: ``path`` as found (not resolved) and why."""

    path: Path
    reason: str
    photo: bool  # named or identified as a photo: a failure of the run, not a skipped non-photo


@dataclass
class Inputs:
    photos: list[Path] = field(default_factory=list)  # resolved, each once
    rejected: list[InputEntry] = field(default_factory=list)

    @property
    def failed(self) -> list[InputEntry]:
        return [e for e in self.rejected if e.photo]

    @property
    def skipped(self) -> list[InputEntry]:
        return [e for e in self.rejected if not e.photo]


def _photo_name(path: Path) -> bool:
    return path.suffix.lower() in PHOTO_SUFFIXES


def _identifies_as_image(path: Path) -> str | None:
    """None when Pillow identifies the file as an image (header only), else why not."""
    try:
        with Image.open(path):
            return None
    except OSError as exc:  # UnidentifiedImageError is an OSError
        return f"not an image ({exc.strerror or 'Pillow does not identify it'})" if exc.errno else "not an image"
    except Exception as exc:  # a decoder choking on a header is still "not an image" for this walk
        return f"not an image ({type(exc).__name__})"


class _Walker:
    def __init__(self, recursive: bool, exclude: Iterable[Path]):
        self.recursive = recursive
        self.exclude = {os.path.realpath(p) for p in exclude}
        self.out = Inputs()
        self._seen: set[str] = set()
        self._visited: dict[tuple[int, int], Path] = {}

    def add_photo(self, path: Path) -> None:
        real = Path(os.path.realpath(path))
        if str(real) not in self._seen:
            self._seen.add(str(real))
            self.out.photos.append(real)

    def reject(self, path: Path, reason: str, photo: bool | None = None) -> None:
        self.out.rejected.append(InputEntry(path, reason, _photo_name(path) if photo is None else photo))

    def entry(self, path: Path, top: bool = False) -> None:
        """Classify one path found in a folder or by a glob (``top``: named in ``input=`` itself)."""
        try:
            st = os.stat(path)  # follows symlinks
        except OSError as exc:
            if os.path.islink(path):
                target = os.readlink(path)
                if exc.errno == errno.ELOOP:
                    self.reject(path, f"symlink loop ({path} → {target} never reaches a file)")
                else:
                    self.reject(path, f"dangling symlink: points to {target}, which does not exist")
            else:
                self.reject(path, f"cannot read: {exc.strerror or exc}")
            return
        if stat.S_ISDIR(st.st_mode):
            if top or self.recursive:
                self.folder(path, st)
            else:
                self.reject(path, "a sub-folder: not searched (recursive=false)", photo=False)
        elif not stat.S_ISREG(st.st_mode):
            kind = "fifo" if stat.S_ISFIFO(st.st_mode) else "socket" if stat.S_ISSOCK(st.st_mode) else "device"
            self.reject(path, f"not a regular file (a {kind})")
        elif top or _photo_name(path):
            self.add_photo(path)  # load_image gives the reason if it is not a readable photo
        elif (why := _identifies_as_image(path)) is None:
            self.add_photo(path)
        else:
            self.reject(path, why, photo=False)

    def folder(self, path: Path, st: os.stat_result) -> None:
        if os.path.realpath(path) in self.exclude:
            return  # fds's own output or cache folder inside the input folder
        key = (st.st_dev, st.st_ino)
        if key in self._visited:
            self.reject(path, f"symlink loop: leads back to the folder {self._visited[key]} already searched",
                        photo=False)
            return
        self._visited[key] = path
        try:
            names = sorted(os.listdir(path))
        except OSError as exc:
            self.reject(path, f"cannot list the folder: {exc.strerror or exc}", photo=False)
            return
        for name in names:
            self.entry(path / name)


def expand_inputs(spec: str | Sequence[str], recursive: bool = True, exclude: Iterable[Path] = ()) -> Inputs:
    """Photos and rejected entries of ``input=`` (a file, a folder, a glob, or a list of them).

    ``exclude``: folders never searched (the run's output and cache folders). Raises :class:`NoInputError`
    when nothing photo-like is found (no photo, no failed photo; skipped entries are listed in the message)."""
    specs = [spec] if isinstance(spec, str) else [str(s) for s in spec]
    walker = _Walker(recursive, exclude)
    for s in specs:
        p = Path(s).expanduser()
        if os.path.lexists(p):
            walker.entry(p, top=True)
        else:
            for match in sorted(glob.glob(str(p), recursive=True)):
                walker.entry(Path(match))
    out = walker.out
    if not out.photos and not out.failed:
        seen = "; ".join(f"{e.path.name}: {e.reason}" for e in out.skipped[:3]) + (" …" if len(out.skipped) > 3 else "")
        raise NoInputError(f"input={spec!r} matches no image: give a photo, a folder of photos or a glob"
                           + (f" (found only {seen})" if seen else ""))
    return out
