"""Loader processes keep freed memory (`data/batches/heap.py`): a second pass over the same amount page-faults nothing, even
past 2 GiB, where a trim threshold at mallopt's int maximum gave the freed heap back to the kernel."""

from __future__ import annotations

import subprocess
import sys

# glibc's malloc and free themselves (torch's and numpy's large buffers go through them), in a fresh process.
PASSES = """
import ctypes, resource
from smvl.data.batches.heap import keep_freed_memory

keep_freed_memory()
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype, libc.free.argtypes = ctypes.c_void_p, [ctypes.c_void_p]
faults = []
for _ in range(2):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    blocks = [libc.malloc(100 << 20) for _ in range(22)]  # 2.2 GB, a length-grouping buffer of float tiles
    for block in blocks:
        ctypes.memset(block, 1, 100 << 20)
    for block in blocks:
        libc.free(block)
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(*faults)
"""


def test_a_loader_process_reuses_over_2_gib_of_freed_memory_without_page_faults():
    first, second = map(int, subprocess.run([sys.executable, "-c", PASSES], capture_output=True, text=True,
                                            check=True, timeout=120).stdout.split())
    assert first > 500_000  # 2.2 GB in 4 KiB pages: the first pass faults them in
    assert second < first / 100, (first, second)
