"""The proxy stage of the next photos while the current one goes through the network and the writers.

:func:`prefetch_proxies` yields one :class:`ProxyOutcome` per photo, in input order. With ``workers ≥ 1`` the
photos' proxies are computed up to ``ahead`` photos in advance by worker processes (``concurrent.futures``,
forked: the face model loaded by the run is shared copy-on-write, not loaded again; dlib, eos and the emotion
network are built lazily in each worker, since eos objects neither pickle nor release the GIL). The proxy stage
runs torch on one thread wherever it runs (:meth:`fds.proxy.ProxyStage.process`), so a worker's proxy is the
in-process proxy bit for bit, and on a 2-core machine the worker fills the cycles the main process leaves idle
(PNG and mesh writing are single-threaded) instead of competing with the network's threads. With ``workers=0``
(or a single photo) every proxy is computed in this process when its photo's turn comes: the sequential path.

With ``device="cuda"`` the workers compute on the CPU (a forked process cannot use the parent's CUDA context):
their proxies equal the in-process CPU proxies, and differ from CUDA ones by float rounding only, as proxies in
the cache already may (its key does not hold the device).

A photo's failure (unreadable, no face, any exception) is its outcome's ``error``, raised by
:meth:`ProxyOutcome.get` where the caller handles it, with the worker's traceback as its ``__cause__``. A
worker process that dies (a crash in native code, the kernel's out-of-memory killer) fails the photo it was
working on (:class:`ProxyWorkerError`) and the remaining photos go on in a fresh pool. Workers ignore Ctrl-C
(the run decides what to do with it), are stopped when the consumer stops early, and exit by themselves when
the process that started them dies (a killed run leaves no orphans); a worker never writes outside the proxy
cache, so a run stopped at any moment leaves no partial photo folder (:mod:`fds.outputs`).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import pickle
import signal
import threading
import time
from collections import deque
from collections.abc import Generator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

from fds.proxy.stage import ProxyResult, ProxyStage

__all__ = ["ProxyOutcome", "ProxyWorkerError", "prefetch_proxies"]

log = logging.getLogger(__name__)


class ProxyWorkerError(RuntimeError):
    """The process computing a photo's proxy died (the photo is reported, the run goes on)."""


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


def _init_worker(stage: ProxyStage, parent: int) -> None:
    import torch

    global _STAGE
    torch.set_num_threads(1)  # before any torch op: the main process's network keeps the cores' threads
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group: the run handles it
    _STAGE = stage

    def watch() -> None:  # exit when the run that started us is gone (SIGKILL gives it no chance to say so)
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="fds-proxy-watchdog").start()


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


def _worker_stage(stage: ProxyStage) -> ProxyStage:
    """The stage as the workers run it: on the CPU (a forked process cannot use the parent's CUDA context),
    with the face model already loaded (shared with the workers, not loaded again in each)."""
    stage.face_model  # noqa: B018
    if stage.device == "cpu":
        return stage
    cpu = ProxyStage(stage.config, cache_dir=stage.cache_dir, device="cpu", assets_dir=stage.assets_dir)
    cpu._fm = stage.face_model
    return cpu


# ------------------------------------------------------------------------------------------- parent side
def _pool(worker_stage: ProxyStage, workers: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork"),
                               initializer=_init_worker, initargs=(worker_stage, os.getpid()))


def _alone(worker_stage: ProxyStage, path: Path) -> ProxyOutcome:
    """``path`` in a pool of its own: after a worker died, this tells whether this photo is the one that kills it
    (a dying worker fails every photo in flight, not only its own)."""
    with _pool(worker_stage, 1) as pool:
        try:
            return ProxyOutcome(path, pool.submit(_proxy_in_worker, path).result())
        except BrokenProcessPool as exc:
            log.error("the proxy worker died on %s (%s): going on with a new one", path, exc)
            return ProxyOutcome(path, error=ProxyWorkerError(
                f"the proxy stage's process died on this photo ({exc}); a crash in dlib/eos or out of memory: "
                "try the photo alone, or a smaller copy of it"))
        except Exception as exc:
            return ProxyOutcome(path, error=exc)


def prefetch_proxies(stage: ProxyStage, paths: Sequence[Path], workers: int = 1,
                     ahead: int | None = None) -> Generator[ProxyOutcome, None, None]:
    """One :class:`ProxyOutcome` per path, in order; with ``workers`` processes computing up to ``ahead`` photos
    (default ``workers + 1``) beyond the one being consumed. ``workers=0``: in this process, one at a time.
    Close the iterator (``contextlib.closing``) when stopping early: that cancels the photos not yet started."""
    paths = [Path(p) for p in paths]
    if workers <= 0 or len(paths) <= 1:
        for path in paths:
            try:
                yield ProxyOutcome(path, stage(path))
            except Exception as exc:  # reported by the caller with the photo; the run goes on
                yield ProxyOutcome(path, error=exc)
        return
    ahead = workers + 1 if ahead is None else max(int(ahead), 0)
    worker_stage = _worker_stage(stage)
    start, suspect = 0, False  # paths[start] is the next to hand out; suspect: it was in flight when a worker died
    while start < len(paths):
        if suspect:
            outcome = _alone(worker_stage, paths[start])
            start, suspect = start + 1, False
            yield outcome
            continue
        pool = _pool(worker_stage, min(workers, len(paths) - start))
        pending: deque[Future] = deque()
        submitted = start
        try:
            while start < len(paths):
                while submitted < len(paths) and submitted - start <= ahead:
                    pending.append(pool.submit(_proxy_in_worker, paths[submitted]))
                    submitted += 1
                future = pending.popleft()
                try:
                    outcome = ProxyOutcome(paths[start], future.result())
                except BrokenProcessPool:  # some photo in flight killed its worker: find which, alone
                    suspect = True
                    break
                except Exception as exc:
                    outcome = ProxyOutcome(paths[start], error=exc)
                start += 1
                yield outcome
        except BaseException:  # the consumer stopped (closed us, Ctrl-C): drop what is queued, do not wait
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown(wait=True, cancel_futures=True)
