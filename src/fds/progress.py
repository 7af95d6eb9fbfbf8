"""One progress display per long stage: a tqdm bar on a terminal, a few plain log lines elsewhere.

When stderr is a terminal, :func:`progress` is a tqdm bar. When it is not (CI logs, ``> run.log 2>&1``,
Hydra's log file), carriage-return redraws would flood the log, so it writes a line when the stage starts,
then at most one line per ``every_s`` seconds, and one when it ends, each with the count, the rate and the
ETA::

    photos: 3/12 (25%) 2m10s elapsed, 43.3 s/photo, ETA 6m30s

Lines go through :mod:`logging` (logger ``fds.progress``) when logging is configured (Hydra apps), else
straight to stderr. ``FDS_PROGRESS=bar|lines|off`` overrides the choice.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from tqdm import tqdm

log = logging.getLogger("fds.progress")
T = TypeVar("T")
MODES = ("bar", "lines", "off")


def _mode(stream) -> str:
    env = os.environ.get("FDS_PROGRESS", "").strip().lower()
    if env in MODES:
        return env
    try:
        return "bar" if stream.isatty() else "lines"
    except (AttributeError, ValueError):  # closed or odd streams
        return "lines"


def _fmt(seconds: float) -> str:
    return tqdm.format_interval(max(seconds, 0.0))


class Progress:
    """A progress display for ``total`` items (None: unknown). ``update(n)`` after each piece of work; use as a
    context manager (or call ``close()``) so the final line is written."""

    def __init__(self, total: int | None, desc: str, unit: str = "it", every_s: float = 30.0, stream=None):
        self.total, self.desc, self.unit, self.every_s = total, desc, unit, every_s
        self.stream = stream if stream is not None else sys.stderr
        self.mode = _mode(self.stream)
        self.n = 0
        self._start = self._last = time.monotonic()
        self._bar = None
        self._closed = False
        if self.mode == "bar":
            self._bar = tqdm(total=total, desc=desc, unit=unit, file=self.stream, dynamic_ncols=True)
        elif self.mode == "lines":
            self._emit(f"{desc}: started" + (f", {total} {unit}{'s' if total != 1 else ''}" if total else ""))

    def _emit(self, text: str) -> None:
        if logging.getLogger().handlers:
            log.info(text)
        else:
            print(text, file=self.stream, flush=True)

    def line(self) -> str:
        """The current state as one line (count, percent, elapsed, time per item, ETA)."""
        elapsed = time.monotonic() - self._start
        parts = [f"{self.desc}: {self.n}" + (f"/{self.total} ({self.n / self.total:.0%})" if self.total else "")]
        parts.append(f"{_fmt(elapsed)} elapsed")
        if self.n:
            per = elapsed / self.n
            parts.append(f"{per:.1f} s/{self.unit}" if per >= 1 else f"{1 / max(per, 1e-9):.1f} {self.unit}/s")
            if self.total and self.n < self.total:
                parts.append(f"ETA {_fmt(per * (self.total - self.n))}")
        return ", ".join(parts)

    def update(self, n: int = 1, postfix: str | None = None) -> None:
        self.n += n
        if self._bar is not None:
            if postfix is not None:
                self._bar.set_postfix_str(postfix, refresh=False)
            self._bar.update(n)
        elif self.mode == "lines":
            now = time.monotonic()
            if now - self._last >= self.every_s and (self.total is None or self.n < self.total):
                self._last = now
                self._emit(self.line() + (f" [{postfix}]" if postfix else ""))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._bar is not None:
            self._bar.close()
        elif self.mode == "lines":
            self._emit(self.line().replace(" elapsed", "") + " — done")

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def progress(iterable: Iterable[T], desc: str, total: int | None = None, unit: str = "it",
             every_s: float = 30.0, stream=None) -> Iterator[T]:
    """Iterate ``iterable`` with a :class:`Progress` display (``total`` defaults to ``len(iterable)``)."""
    if total is None:
        try:
            total = len(iterable)  # type: ignore[arg-type]
        except TypeError:
            total = None
    with Progress(total, desc, unit=unit, every_s=every_s, stream=stream) as p:
        for item in iterable:
            yield item
            p.update()
