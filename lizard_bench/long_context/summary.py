"""Turning per-prompt outcomes into metric values named by their grid point.

Names follow the report's convention (``base@length:depth``): ``exact_match@4096:0.5`` for
one cell, ``exact_match@4096`` for a length over all depths, ``exact_match`` overall. The
report reads the grid point from ``details`` (``context_length``, ``depth``), so those keys
carry the *target* values; the prompt lengths actually built are recorded beside them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from lizard_bench.long_context.generation import Outcome
from lizard_bench.tasks.api import MetricValue

SCORING_RULE = "first run of digits in the greedy continuation equals the answer"
Z_95 = 1.96  # two-sided 95 % normal quantile, for every interval the probes report

# maps an outcome to (metric name, details that identify its group), or None to leave it out
Grouping = Callable[[Outcome], tuple[str, dict[str, Any]] | None]


def point(base: str, *parts: object) -> str:
    """``point('exact_match', 4096, 0.5)`` -> ``'exact_match@4096:0.5'``; floats in their shortest form."""
    if not parts:
        return base
    return f"{base}@" + ":".join(format(p, "g") if isinstance(p, float) else str(p) for p in parts)


def accuracy_by(outcomes: Sequence[Outcome], grouping: Grouping) -> list[MetricValue]:
    """One accuracy per group, in order of first appearance, with its stderr and what was measured."""
    groups: dict[str, tuple[dict[str, Any], list[Outcome]]] = {}
    for outcome in outcomes:
        key = grouping(outcome)
        if key is None:
            continue
        name, details = key
        groups.setdefault(name, (details, []))[1].append(outcome)
    values = []
    for name, (details, members) in groups.items():
        hits = [1.0 if o.correct else 0.0 for o in members]
        lengths = [o.prompt.details.get("prompt_tokens", len(o.prompt.input_ids)) for o in members]
        low, high = wilson_interval(int(sum(hits)), len(hits))
        values.append(MetricValue(
            metric=name,
            value=sum(hits) / len(hits),
            stderr=mean_stderr(hits),
            details={
                **details,
                "trials": len(members),
                "ci_low": low,
                "ci_high": high,
                "prompt_tokens_min": min(lengths),
                "prompt_tokens_max": max(lengths),
                "sample_output": members[0].generated[:80],
                "scoring": SCORING_RULE,
            },
        ))
    return values


def mean_stderr(samples: Sequence[float]) -> float | None:
    """Standard error of the mean with the sample (n − 1) variance; None below two samples."""
    if len(samples) < 2:
        return None
    mean = sum(samples) / len(samples)
    variance = sum((s - mean) ** 2 for s in samples) / (len(samples) - 1)
    return math.sqrt(variance / len(samples))


def wilson_interval(hits: int, trials: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval of a fraction ``hits / trials`` (95 % by default).

    Cells of the length × depth grid hold a handful of prompts, often all right or all wrong;
    the normal (Wald) interval then has zero width and claims certainty, while Wilson's stays
    inside [0, 1] and still says how little 0/2 or 2/2 shows.
    """
    if trials < 1 or not 0 <= hits <= trials:
        raise ValueError(f"need 0 <= hits <= trials and trials >= 1, got {hits}/{trials}")
    fraction, z2 = hits / trials, z * z
    center = (fraction + z2 / (2 * trials)) / (1 + z2 / trials)
    half = z * math.sqrt(fraction * (1 - fraction) / trials + z2 / (4 * trials * trials)) / (1 + z2 / trials)
    return max(0.0, center - half), min(1.0, center + half)
