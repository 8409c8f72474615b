"""Peak memory of one phase of a benchmark: allocated memory on CUDA, resident set size on the CPU.

On the CPU, glibc keeps freed memory for reuse and raises its mmap threshold as large blocks come and go, so the
RSS after one phase would include the previous phase's garbage. `settle_allocator` pins the threshold at 1 MiB
(large tensors are mmap'd and returned when freed) and each phase starts after `malloc_trim`; a thread samples
/proc/self/statm every millisecond (torch releases the GIL in its kernels).
"""

from __future__ import annotations

import ctypes
import os
import threading
import time

import torch

M_MMAP_THRESHOLD = -3
PAGE = os.sysconf("SC_PAGE_SIZE")


def _libc():
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc: RSS is still measured, just less precisely
        return None


def settle_allocator() -> None:
    libc = _libc()
    if libc is not None:
        libc.mallopt(M_MMAP_THRESHOLD, 1 << 20)


def trim() -> None:
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


class PeakMemory:
    """`with PeakMemory(device) as m: ...` then `m.peak` in bytes."""

    def __init__(self, device: torch.device, interval: float = 0.001):
        self.device, self.interval, self.peak = device, interval, 0
        self._stop = threading.Event()

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss())
            time.sleep(self.interval)

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            trim()
            self.peak = rss()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak = torch.cuda.max_memory_allocated(self.device)
        else:
            self._stop.set()
            self._thread.join()
            self.peak = max(self.peak, rss())
