"""Keep freed memory for reuse in data-loading processes (glibc malloc).

Every sample allocates and frees tens of MB (decoded image, resized pixels, tiles, the batch). glibc serves blocks
over its mmap threshold (at most 32 MiB, adaptively) with fresh mmaps and returns them on free, so the next sample
page-faults and zero-fills the same amount again: about half of collate's CPU time on the bench set. Raising the mmap
threshold makes those blocks come from, and go back to, the heap; and trimming is off altogether (-1, as mallopt(3)
documents), not merely raised to its 2 GiB int maximum: a length-grouping buffer of float tiles passes 2 GiB, and
glibc then gave the freed top of the heap back to the kernel at some later free (half a second of system time,
charged to whatever ran then: `smvl bench data`'s "read" stage, 5.5 ms a sample after the stock path had run) and
the next pass page-faulted it all in again. The heap stays at its high-water mark, which in a loader process is the
shuffle buffer's worth of samples it holds anyway.
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
        libc.mallopt(M_TRIM_THRESHOLD, -1)  # never trim
    except (OSError, AttributeError):
        pass
