"""Child processes that end with their parent, so a killed run leaves no measurement running behind it.

Why: the memory probe's spawned children hold a model (hundreds of MB) and a time budget of minutes.
When the parent is killed (``kill -9``, the OOM killer, a CI timeout) nothing tells them, and they kept
running, alone, for as long as their point took.
"""

from __future__ import annotations

import ctypes
import os
import signal

from lizard_bench.efficiency import resident

_PR_SET_PDEATHSIG = 1  # Linux prctl option: a signal for this process when its parent thread exits


def die_with_parent(parent: int) -> bool:
    """Ask Linux to kill this process when its parent dies; True if it could (Linux ``prctl``).

    ``parent`` is the pid the parent gave: when it has already died (the request came too late),
    this process exits at once.
    """
    libc = resident._libc()
    prctl = getattr(libc, "prctl", None) if libc is not None else None
    done = prctl is not None and prctl(_PR_SET_PDEATHSIG, ctypes.c_ulong(signal.SIGKILL)) == 0
    if os.getppid() != parent:
        os._exit(1)
    return done
