"""Peak-memory measurement for one call: CUDA allocator peak, or sampled process RSS on CPU.

Python's ``tracemalloc`` does not see tensor storage (torch allocates it outside Python's
allocator), so on CPU a background thread samples the resident set size (``/proc/self/statm``)
every few milliseconds and reports the peak *growth* over the value at entry. Freed heap pages are
returned to the OS first (glibc ``malloc_trim``) so that memory freed by an earlier call does not
hide this call's growth. Short spikes between samples can be missed; the figure is a lower bound
of the true peak, good to a few MB.
"""

from __future__ import annotations

import os
import resource
import threading
import time
from types import TracebackType

import torch

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _release_free_memory() -> None:
    """Return freed heap pages to the OS (glibc ``malloc_trim``) so RSS growth starts clean."""
    import gc

    gc.collect()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: growth may then be under-reported
        pass


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):  # not Linux: fall back to the lifetime peak
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class PeakMemory:
    """Context manager: ``.peak_bytes`` (growth over entry) and ``.method`` after exit."""

    def __init__(self, device: torch.device | None = None, interval_s: float = 0.005) -> None:
        self.device = device
        self.interval_s = interval_s
        self.peak_bytes = 0
        self.method = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._base = 0
        self._max = 0

    def _sample(self) -> None:
        while not self._stop.is_set():
            self._max = max(self._max, _rss_bytes())
            time.sleep(self.interval_s)

    def __enter__(self) -> PeakMemory:
        if self.device is not None and self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
            self.method = "torch.cuda.max_memory_allocated"
            return self
        self.method = "sampled process RSS growth (/proc/self/statm, 5 ms)"
        _release_free_memory()
        self._base = self._max = _rss_bytes()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._thread is None:
            self.peak_bytes = int(torch.cuda.max_memory_allocated(self.device) - self._base)
            return
        self._stop.set()
        self._thread.join()
        self._max = max(self._max, _rss_bytes())
        self.peak_bytes = int(max(self._max - self._base, 0))
