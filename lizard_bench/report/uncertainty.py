"""How sure a recorded number is: its standard error, its 95 % interval, and a difference's interval.

Records carry their uncertainty in one of two ways: lm-eval and mean-based metrics a
``stderr``, the long-context probes and paired gains a 95 % interval in ``details``
(``ci_low``/``ci_high``, Wilson for exact match). A 0/2 exact match has a stderr of 0 but an
interval of [0, 65.8] %: its stderr says nothing, so the interval stands in for it. Records
are all that the views have (no per-item pairing), so a difference's interval is the unpaired
one. The regression check and the leaderboard read uncertainty only through this module, so
they cannot disagree about it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

Z95 = 1.96  # two-sided 95 % normal quantile


def standard_error(stderr: float | None, details: Mapping | None) -> float | None:
    """The record's stderr when usable (finite, > 0), else half its 95 % interval over 1.96, else None."""
    if stderr is not None and math.isfinite(stderr) and stderr > 0:
        return float(stderr)
    recorded = recorded_interval(details)
    if recorded is None:
        return None
    return (recorded[1] - recorded[0]) / (2 * Z95)


def recorded_interval(details: Mapping | None) -> tuple[float, float] | None:
    """``details.ci_low``/``ci_high`` when both are numbers, else None."""
    if not isinstance(details, Mapping):
        return None
    low, high = details.get("ci_low"), details.get("ci_high")
    if not all(isinstance(bound, int | float) and math.isfinite(bound) for bound in (low, high)):
        return None
    return float(low), float(high)


def value_interval(value: float, stderr: float | None, details: Mapping | None) -> tuple[float, float] | None:
    """A value's 95 % interval: the recorded one (it may be asymmetric), else value ± 1.96·se, else None."""
    recorded = recorded_interval(details)
    if recorded is not None:
        return recorded
    se = standard_error(stderr, details)
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
