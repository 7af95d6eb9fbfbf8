"""Hand freed heap memory back to the operating system between photos and between a photo's stages
(:func:`release_free_memory`).

A photo's proxy stage, network pass and detail maps each allocate and free a few hundred MB of short-lived
buffers. glibc's allocator keeps freed small and medium blocks in its arenas for reuse, so a process that has
handled one stage holds ~0.2–0.3 GB it no longer uses until a later stage happens to reuse it: the next stage's
peak then sits on top of the last one's leftovers. In a folder run the proxy worker idles with that memory while
the main process peaks (benchmarks/bench_pipeline.py, folder section, reports both). glibc's ``malloc_trim``
returns those free pages. Elsewhere (macOS, Windows, musl) this is a no-op.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys

__all__ = ["release_free_memory"]


@functools.cache
def _malloc_trim():  # the libc function, or None where there is no glibc
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        fn = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    fn.argtypes, fn.restype = [ctypes.c_size_t], ctypes.c_int
    return fn


def release_free_memory() -> bool:
    """Return the heap's free pages to the OS (glibc ``malloc_trim(0)``, ~1 ms). True when memory was
    released, False when there was none to release or the platform has no such call."""
    fn = _malloc_trim()
    return bool(fn(0)) if fn is not None else False
