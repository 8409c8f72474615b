"""Keep freed memory for reuse in data-loading processes (glibc malloc).

Every sample allocates and frees tens of MB (decoded image, resized pixels, tiles, the batch). glibc serves blocks
over its mmap threshold (at most 32 MiB, adaptively) with fresh mmaps and returns them on free, so the next sample
page-faults and zero-fills the same amount again: about half of collate's CPU time on the bench set. Raising the mmap
and trim thresholds makes those blocks come from, and go back to, the heap. The heap then stays at its high-water
mark, which in a loader process is a few batches' worth.
"""

from __future__ import annotations

import ctypes

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
_done = False


def keep_freed_memory() -> None:
    """Once per process; a no-op where the C library is not glibc."""
    global _done
    if _done:
        return
    _done = True
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(M_MMAP_THRESHOLD, 1 << 30)
        libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1)  # an int: the largest it takes
    except (OSError, AttributeError):
        pass
