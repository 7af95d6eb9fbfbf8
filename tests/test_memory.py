"""release_free_memory hands the heap's free pages back to the OS (glibc), so an idle proxy worker or the
main process between photos does not sit on the last photo's buffers."""

from __future__ import annotations

import ctypes.util
import sys

import pytest

from fds.memory import release_free_memory


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


@pytest.mark.skipif(not sys.platform.startswith("linux") or ctypes.util.find_library("c") is None,
                    reason="malloc_trim is glibc's (Linux)")
def test_freed_heap_memory_goes_back_to_the_os():
    # 2,000 blocks of 48 KB (below glibc's mmap threshold: they live in the heap) with one block kept at the
    # top, so free() alone cannot shrink the heap: ~96 MB freed but still resident until trimmed
    blocks = [bytearray(48 * 1024) for _ in range(2000)]
    keep = bytearray(48 * 1024)
    for b in blocks:
        b[::4096] = b"\x01" * len(b[::4096])  # touch every page so it is resident
    del blocks
    before = _rss_mb()
    assert release_free_memory()
    after = _rss_mb()
    assert before - after > 48, f"RSS {before:.0f} → {after:.0f} MB: the freed ~96 MB stayed resident"
    del keep
