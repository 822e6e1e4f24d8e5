"""Resident memory of this process on Linux: current, high-water mark (resettable), and handing free pages back.

Kept apart from the timing code and free of torch, so a task can ask whether CPU peak memory can
be measured here without loading torch.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
from pathlib import Path


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def rss_bytes() -> int:
    return _status_kib("VmRSS") * 1024


def reset_peak_rss() -> None:
    """Reset the kernel's high-water mark of resident memory (VmHWM) to the current RSS."""
    Path("/proc/self/clear_refs").write_text("5")


def peak_rss_bytes() -> int:
    return _status_kib("VmHWM") * 1024


def cpu_peak_memory_supported() -> bool:
    try:
        reset_peak_rss()
        return peak_rss_bytes() > 0
    except OSError:
        return False


def release_free_memory() -> bool:
    """Return memory freed so far to the operating system; True if the C library could (glibc ``malloc_trim``).

    Why: freed tensors below glibc's mmap threshold stay in the heap as free but resident
    pages, so after a prefill the resident set still holds the prefill's temporaries; a decode
    measured from there would count them. ``malloc_trim(0)`` hands every whole free page back.
    """
    gc.collect()
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    trim = getattr(ctypes.CDLL(name), "malloc_trim", None)
    if trim is None:
        return False
    trim(0)
    return True
