"""Writing files so that a reader never sees a partial one: temp name in the same folder, then rename.

Every writer in fds goes through these helpers:

- :func:`atomic_write_bytes`: one file from byte chunks;
- :func:`atomic_folder`: a whole folder (a proxy-cache entry, a dataset sample, one photo's outputs) built
  under a hidden temporary sibling name and renamed into place when the ``with`` block succeeds, so the
  folder is complete or absent.

Both keep the usual file permissions (umask), not ``mkstemp``'s private 0600.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_write_bytes", "atomic_folder"]


def _umask_mode(base: int = 0o666) -> int:
    mask = os.umask(0)
    os.umask(mask)
    return base & ~mask


def atomic_write_bytes(path: str | os.PathLike, chunks: Iterable[bytes]) -> None:
    """Write ``chunks`` to ``path`` through a temp file in the same folder and rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            for chunk in chunks:
                f.write(chunk)
        os.chmod(tmp, _umask_mode())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        if exc.filename is None:  # a failed write (disk full, I/O error) does not say which file it was
            raise OSError(exc.errno, f"{exc.strerror or exc} while writing", str(path)) from exc
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def atomic_folder(folder: str | os.PathLike, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary sibling folder of ``folder``; on success it replaces ``folder``, on error it is removed.

    ``overwrite=False`` raises ``FileExistsError`` when ``folder`` exists (before anything is written). When
    another process renamed its own complete folder into place first, the existing one is kept when
    ``overwrite`` is false, replaced otherwise.
    """
    folder = Path(folder)
    if folder.exists() and not overwrite:
        raise FileExistsError(f"{folder} exists (pass overwrite=True to replace it)")
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".part", dir=folder.parent))
    try:
        yield tmp
        os.chmod(tmp, _umask_mode(0o777))
        if folder.exists() and overwrite:
            old = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".old", dir=folder.parent))
            os.replace(folder, old / "x")  # move the old folder aside first: rename cannot replace a full dir
            try:
                os.replace(tmp, folder)
            finally:
                shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
