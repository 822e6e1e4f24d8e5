"""Resident memory of this process on Linux: current, high-water mark (resettable), and handing free pages back.

Kept apart from the timing code and free of torch, so a task can ask whether CPU peak memory can
be measured here without loading torch.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
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


# Blocks of this size or more get a mapping of their own from glibc (see return_large_blocks_at_once).
LARGE_BLOCK_BYTES = 4 * 1024 * 1024
_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number


@functools.cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    return None if name is None else ctypes.CDLL(name)


def return_large_blocks_at_once(threshold: int = LARGE_BLOCK_BYTES) -> bool:
    """Have glibc serve every block of ``threshold`` bytes or more from its own mapping, unmapped when freed
    (``mallopt(M_MMAP_THRESHOLD)``); True if the C library took it. Call it before the memory to be measured.

    Why: by default glibc raises that threshold to the size of each mapped block it frees (up to 32 MiB),
    after which such blocks come from the heap, where a freed one stays resident until the heap's top is
    trimmed. The resident set then held whatever the allocator's history left: the teacher's 8K prefill
    peak read 617 to 1,094 MiB in four identical runs, and its 16 decode steps "grew" by 76 to 410 MiB
    (each step's cache concatenation freed its old 6 MiB blocks into the heap). With a fixed threshold it
    read 591-599 MiB and 7 MiB in seven runs. 4 MiB keeps a 512-token chunk's blocks (3 MiB and less) in
    the heap: a lower threshold made the linearized prefill 1.8x slower (a page fault per page, per block).
    """
    libc = _libc()
    mallopt = getattr(libc, "mallopt", None) if libc is not None else None
    return bool(mallopt is not None and mallopt(_M_MMAP_THRESHOLD, threshold) == 1)


def release_free_memory() -> bool:
    """Return memory freed so far to the operating system; True if the C library could (glibc ``malloc_trim``).

    Why: freed tensors below glibc's mmap threshold stay in the heap as free but resident
    pages, so after a prefill the resident set still holds the prefill's temporaries; a decode
    measured from there would count them. ``malloc_trim(0)`` hands every whole free page back.
    """
    gc.collect()
    libc = _libc()
    trim = getattr(libc, "malloc_trim", None) if libc is not None else None
    if trim is None:
        return False
    trim(0)
    return True
