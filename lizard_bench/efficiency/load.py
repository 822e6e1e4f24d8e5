"""How busy the machine was while a point was measured, so that a slow number can be told from a slow model.

A shared 2-core machine can make a decode look 13× slower than it is. The load average alone
lags by a minute and counts our own threads, so the meter reads the CPU time that *other*
processes used during the point: the machine's busy time from ``/proc/stat`` minus this
process's own and its children's CPU time (``os.times``), divided by the wall time. A point is
*noisy* when others kept more than :data:`NOISY_CORES` of a core busy on average.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

NOISY_CORES = 0.25  # others' average CPU use, in cores, above which a point is marked noisy
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _machine_busy_s() -> float | None:
    """CPU seconds all processes spent busy since boot (every core), or None where /proc/stat is missing."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(value) for value in fields[1:9])
    return (user + nice + system + irq + softirq + steal) / _CLOCK_TICKS


def _own_cpu_s() -> float:
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


@dataclass
class LoadReading:
    other_cores: float | None  # other processes' average CPU use during the point, in cores
    load_average: float  # the 1-minute load average at the end of the point (includes this process)

    @property
    def noisy(self) -> bool:
        return self.other_cores is not None and self.other_cores > NOISY_CORES

    def details(self) -> dict[str, float | bool | None]:
        other = None if self.other_cores is None else round(self.other_cores, 3)
        return {"other_cpu_cores": other, "load_average_1m": round(self.load_average, 2), "noisy": self.noisy}


class LoadMeter:
    """``with LoadMeter() as meter: ...`` then ``meter.reading``."""

    reading: LoadReading

    def __enter__(self) -> LoadMeter:
        self._start = (time.monotonic(), _machine_busy_s(), _own_cpu_s())
        return self

    def __exit__(self, *exc_info: object) -> None:
        wall_start, busy_start, own_start = self._start
        wall = time.monotonic() - wall_start
        busy_end = _machine_busy_s()
        other = None
        if busy_start is not None and busy_end is not None and wall > 0:
            other = max(0.0, (busy_end - busy_start) - (_own_cpu_s() - own_start)) / wall
        self.reading = LoadReading(other, os.getloadavg()[0])
