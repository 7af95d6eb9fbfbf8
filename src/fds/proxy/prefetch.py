"""The proxy stage of the next photos while the current one goes through the network and the writers.

:func:`prefetch_proxies` yields one :class:`ProxyOutcome` per photo, in input order. With ``workers ≥ 1`` the
proxies of up to ``ahead`` photos beyond the current one are computed by worker processes while the caller works
on the current photo; the first photo's proxy is computed in this process while the workers start.

The workers come from a fork server (``multiprocessing``'s ``forkserver``), not from forking this process: dlib
keeps a process-wide thread pool that a forked child inherits without its threads (a worker forked after this
process ran dlib's CNN detector hangs in it), and CUDA cannot be used in a forked child. Each worker receives the
stage pickled, with the face model already loaded (read from disk once per run, not once per worker), and builds
its dlib detectors, eos objects and emotion network lazily on first use (they do not pickle). The proxy stage runs
torch on one thread wherever it runs (:meth:`fds.proxy.ProxyStage.process`), so a worker's proxy is this process's
proxy bit for bit, and on a 2-core machine a worker fills the cycles the main process leaves idle (PNG and mesh
writing are single-threaded) instead of competing with the network's threads. With ``workers=0`` (or a single
photo) every proxy is computed in this process when its photo's turn comes: the sequential path.

A photo's failure (unreadable, no face, any exception) is its outcome's ``error``, raised by
:meth:`ProxyOutcome.get` where the caller handles it, with the worker's traceback as its ``__cause__``. A worker
process that dies (a crash in native code, the kernel's out-of-memory killer) takes every photo in flight with
it; the first of them is retried alone and fails with :class:`ProxyWorkerError` only if it kills its worker
again, and the other photos go on in a fresh pool. Workers ignore Ctrl-C (the run handles it), are killed when
the caller stops early (close the iterator), and exit by themselves when the run is killed (a watchdog thread
waits on the run's pidfd). They write nothing but proxy cache entries and never hold ``output=`` (forked from
the server, they never had its lock), so a run stopped at any moment leaves no partial photo folder
(:mod:`fds.outputs`) and nothing running.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import pickle
import select
import signal
import threading
import time
from collections import deque
from collections.abc import Generator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

from fds.memory import release_free_memory
from fds.proxy.stage import ProxyResult, ProxyStage

__all__ = ["ProxyOutcome", "ProxyWorkerError", "prefetch_proxies"]

log = logging.getLogger(__name__)


class ProxyWorkerError(RuntimeError):
    """The process computing a photo's proxy died on it (the photo is reported, the run goes on)."""


@dataclass
class ProxyOutcome:
    """One photo through the proxy stage: its results, or the exception that stopped it."""

    path: Path
    results: list[ProxyResult] | None = None
    error: BaseException | None = None

    def get(self) -> list[ProxyResult]:
        """The results, or raise the photo's exception (``ImageReadError``, ``NoFaceError``, …)."""
        if self.error is not None:
            raise self.error
        assert self.results is not None
        return self.results


# ------------------------------------------------------------------------------------------- worker side
_STAGE: ProxyStage | None = None


def _exit_with(run: int) -> None:
    """Exit when the run (process ``run``) is gone: a killed run cannot tell its workers, and a fork server's
    worker is not the run's child (Linux: a pidfd wakes us when it exits; elsewhere we poll)."""
    try:
        fd = os.pidfd_open(run)
    except (AttributeError, OSError) as exc:
        if isinstance(exc, ProcessLookupError):
            os._exit(1)
        fd = None

    def watch() -> None:
        if fd is not None:
            select.select([fd], [], [])  # readable once the run has exited
        else:
            while _alive(run):
                time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="fds-proxy-watchdog").start()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def _init_worker(stage: ProxyStage, run: int) -> None:
    import torch

    global _STAGE
    _exit_with(run)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group: the run handles it
    torch.set_num_threads(1)  # the main process's network keeps the cores' threads
    _STAGE = stage


def _proxy_in_worker(path: Path) -> list[ProxyResult]:
    assert _STAGE is not None
    try:
        return _STAGE(path)
    except Exception as exc:  # it must reach the parent as it is, or as a plain error that says the same
        try:
            pickle.loads(pickle.dumps(exc))
        except Exception:
            raise RuntimeError(f"{type(exc).__name__}: {exc}") from None
        raise
    finally:
        release_free_memory()  # the worker waits between photos: not with the last photo's buffers


# ------------------------------------------------------------------------------------------- parent side
def _pool(stage: ProxyStage, workers: int) -> ProcessPoolExecutor:
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["fds.proxy.stage"])  # torch, numpy, eos imported once, in the server
    return ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker,
                               initargs=(stage, os.getpid()))


def _stop(pool: ProcessPoolExecutor, wait: bool) -> None:
    """Shut ``pool`` down, killing its workers first: after a worker died, or when the caller stops early. (A
    worker the pool started while another was dying is not stopped by the pool itself: it would block forever
    on a result nobody reads, and shutdown with it.)"""
    kill = getattr(pool, "kill_workers", None)  # Python ≥ 3.14
    if kill is not None:
        kill()
    else:
        for proc in list((getattr(pool, "_processes", None) or {}).values()):
            proc.kill()
    pool.shutdown(wait=wait, cancel_futures=True)


def _here(stage: ProxyStage, path: Path) -> ProxyOutcome:
    try:
        return ProxyOutcome(path, stage(path))
    except Exception as exc:  # reported by the caller with the photo; the run goes on
        return ProxyOutcome(path, error=exc)


def _alone(stage: ProxyStage, path: Path) -> ProxyOutcome:
    """``path`` in a pool of its own: after a worker died, this tells whether this photo is the one that kills it
    (a dying worker fails every photo in flight, not only its own)."""
    pool = _pool(stage, 1)
    try:
        outcome = ProxyOutcome(path, pool.submit(_proxy_in_worker, path).result())
    except BrokenProcessPool as exc:
        log.error("the proxy worker died on %s (%s): going on with a new one", path, exc)
        _stop(pool, wait=True)
        return ProxyOutcome(path, error=ProxyWorkerError(
            f"the proxy stage's process died on this photo ({exc}); a crash in dlib/eos or out of memory: "
            "try the photo alone, or a smaller copy of it"))
    except Exception as exc:
        outcome = ProxyOutcome(path, error=exc)
    except BaseException:
        _stop(pool, wait=False)
        raise
    pool.shutdown(wait=True)
    return outcome


def prefetch_proxies(stage: ProxyStage, paths: Sequence[Path], workers: int = 1,
                     ahead: int | None = None) -> Generator[ProxyOutcome, None, None]:
    """One :class:`ProxyOutcome` per path, in order; with ``workers`` processes computing up to ``ahead`` photos
    (default ``workers + 1``) beyond the one being consumed. ``workers=0``: in this process, one at a time.
    Close the iterator (``contextlib.closing``) when stopping early: that stops the workers at once."""
    paths = [Path(p) for p in paths]
    if workers <= 0 or len(paths) <= 1:
        for path in paths:
            yield _here(stage, path)
        return
    ahead = workers + 1 if ahead is None else max(int(ahead), 0)
    stage.face_model  # noqa: B018  loaded here, once; the workers receive it with the stage
    local = 1  # photos [0, local) are computed in this process (while the first workers start)
    start, suspect = 0, False  # paths[start] is the next to hand out; suspect: it was in flight when a worker died
    while start < len(paths):
        if suspect:
            outcome = _alone(stage, paths[start])
            start, suspect = start + 1, False
            yield outcome
            continue
        pool = _pool(stage, min(workers, len(paths) - max(start, local)))
        pending: deque[Future] = deque()
        submitted = max(start, local)
        try:
            while start < len(paths):
                while submitted < len(paths) and submitted - start <= ahead and not suspect:
                    try:
                        pending.append(pool.submit(_proxy_in_worker, paths[submitted]))
                    except BrokenProcessPool:  # a worker died: what is in flight tells which photo
                        suspect = True
                        break
                    submitted += 1
                if start < local:
                    outcome = _here(stage, paths[start])
                elif not pending:  # the pool broke before this photo was handed to it
                    suspect = True
                    break
                else:
                    try:
                        outcome = ProxyOutcome(paths[start], pending.popleft().result())
                    except BrokenProcessPool:  # some photo in flight killed its worker: find which, alone
                        suspect = True
                        break
                    except Exception as exc:
                        outcome = ProxyOutcome(paths[start], error=exc)
                start += 1
                yield outcome
        except BaseException:  # the consumer stopped (closed us, Ctrl-C): what the workers do is not needed
            _stop(pool, wait=False)
            raise
        if suspect:
            _stop(pool, wait=True)
        else:
            pool.shutdown(wait=True)
