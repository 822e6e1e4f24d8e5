"""Timing and memory primitives shared by the efficiency probes.

Speeds are medians over repeats after a warm-up, with min and max kept, because a shared
machine's noise is one-sided (slowdowns) and a single number hides it.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch


class PointSkipped(Exception):  # noqa: N818 - a control-flow signal, not an error
    """A sweep point that was not measured; ``status`` is 'oom' or 'timeout'."""

    def __init__(self, status: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status


@dataclass
class Timing:
    median_s: float
    min_s: float
    max_s: float
    repeats: int


def is_out_of_memory(error: BaseException) -> bool:
    if isinstance(error, (MemoryError, torch.cuda.OutOfMemoryError)):
        return True
    return isinstance(error, RuntimeError) and "out of memory" in str(error).lower()


def timed(fn: Callable[..., object], *, warmup: int, repeats: int, budget_s: float, device: torch.device,
          setup: Callable[[], object] | None = None) -> Timing:
    """Median wall time of ``fn`` over up to ``repeats`` calls after ``warmup`` calls.

    ``setup``, when given, runs before each call, untimed, and its result is ``fn``'s argument: what
    each call needs fresh (a copy of a post-prefill cache) is then not part of the time measured.
    A copy inside the timed call would weigh on a growing cache (0.23 s for the teacher's
    8K cache, ~14 % of 16 decode steps) and not on a constant-size one.

    The point's calls together stay within ``budget_s``: repeats stop early once another call
    would pass it (at least one is always measured), which is how long contexts get fewer
    repeats. A call cannot be interrupted safely mid-kernel, so a single call over the budget
    is only noticed when it returns; it raises :class:`PointSkipped` ('timeout'), as does an
    out-of-memory error ('oom'), and the caller skips longer points instead of hanging on them.
    """
    samples: list[float] = []
    spent = 0.0
    try:
        for index in range(warmup + repeats):
            prepared = () if setup is None else (setup(),)
            _synchronize(device)
            start = time.perf_counter()
            fn(*prepared)
            _synchronize(device)
            elapsed = time.perf_counter() - start
            spent += elapsed
            if elapsed > budget_s:
                raise PointSkipped("timeout", f"one call took {elapsed:.1f} s, over the {budget_s:.0f} s budget")
            if index >= warmup:
                samples.append(elapsed)
                if spent + elapsed > budget_s:
                    break
    except PointSkipped:
        raise
    except Exception as error:
        if is_out_of_memory(error):
            raise PointSkipped("oom", f"out of memory: {str(error).splitlines()[0][:200]}") from None
        raise
    return Timing(statistics.median(samples), min(samples), max(samples), len(samples))


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
