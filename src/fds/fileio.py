"""Writing files so that a reader never sees a partial one: temp name in the same folder, then rename.

Every writer in fds goes through these helpers:

- :func:`atomic_write_bytes`: one file from byte chunks;
- :func:`atomic_folder`: a whole folder (a proxy-cache entry, a dataset sample, one photo's outputs) built
  under a hidden temporary sibling name and renamed into place when the ``with`` block succeeds, so the
  folder is complete or absent;
- :class:`BackgroundWrites`: independent file writes on a few threads (each still atomic), waited for before
  the folder they go into is renamed into place.

Both keep the usual file permissions (umask), not ``mkstemp``'s private 0600.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from concurrent import futures
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

__all__ = ["atomic_write_bytes", "atomic_folder", "BackgroundWrites"]

T = TypeVar("T")


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


class BackgroundWrites:
    """File writes on a few threads, so that encoding overlaps the computation of the next outputs.

    PNG (zlib) and OpenEXR encoding release the GIL, so on a multi-core machine several files encode at once and
    beside torch/numpy work. ``threads=0`` runs every write at once in the caller (the same files, in order).
    :meth:`wait` blocks until every write submitted so far has finished and re-raises the first failure; leaving
    the ``with`` block waits too (a failed block still waits, so no thread writes into a folder being removed,
    and the block's own exception wins). Writers must not depend on each other: wait between dependent steps.
    """

    def __init__(self, threads: int) -> None:
        if threads < 0:
            raise ValueError(f"threads must be 0 (write in the caller) or more, got {threads}")
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="fds-write") if threads else None
        self._pending: list[Future] = []

    def submit(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> Future[T]:
        """Schedule ``fn(*args, **kwargs)``; without threads it runs now and its exception propagates here."""
        if self._pool is None:
            done: Future[T] = Future()
            done.set_result(fn(*args, **kwargs))
            return done
        future = self._pool.submit(fn, *args, **kwargs)
        self._pending.append(future)
        return future

    def wait(self) -> None:
        """Block until the writes submitted so far are done; re-raise the first one that failed."""
        pending, self._pending = self._pending, []
        futures.wait(pending)
        for f in pending:
            f.result()

    def __enter__(self) -> BackgroundWrites:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self.wait()
            else:
                futures.wait(self._pending)
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
