"""How sure a recorded number is: its standard error, its 95 % interval, and a difference's interval.

Records carry their uncertainty as a ``stderr`` and a 95 % interval (``Record.interval``:
Wilson for exact match, a bootstrap over items otherwise, value ± 1.96·stderr for lm-eval's).
A 0/2 exact match has a stderr of 0 but an interval of [0, 65.8] %: its stderr says nothing,
so the interval stands in for it. Where two records were scored on the same items the views
use the paired interval (``report/pairing.py``); this module gives the unpaired one for the
rest. The regression check and the leaderboard read uncertainty only through these modules,
so they cannot disagree about it.
"""

from __future__ import annotations

import math

from lizard_bench.results.intervals import Z95


def standard_error(stderr: float | None, interval: tuple[float, float] | None) -> float | None:
    """The record's stderr when usable (finite, > 0), else half its 95 % interval over 1.96, else None."""
    if stderr is not None and math.isfinite(stderr) and stderr > 0:
        return float(stderr)
    if interval is None:
        return None
    return (interval[1] - interval[0]) / (2 * Z95)


def value_interval(value: float, stderr: float | None, interval: tuple[float, float] | None
                   ) -> tuple[float, float] | None:
    """A value's 95 % interval: the recorded one (it may be asymmetric), else value ± 1.96·se, else None."""
    if interval is not None:
        return interval
    se = standard_error(stderr, None)
    return None if se is None else (value - Z95 * se, value + Z95 * se)


def difference_interval(baseline: float, baseline_se: float | None, current: float, current_se: float | None
                        ) -> tuple[float, float] | None:
    """The unpaired 95 % interval of ``current − baseline``: diff ± 1.96·√(se_a² + se_b²); None if an se is unknown.

    Both standard errors are needed: with one side's uncertainty unknown, the interval would
    understate it and make a move look significant that is not.
    """
    if baseline_se is None or current_se is None:
        return None
    diff = current - baseline
    half = Z95 * math.hypot(baseline_se, current_se)
    return diff - half, diff + half
