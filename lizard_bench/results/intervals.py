"""95 % intervals: of one score, and of the difference of two scores on the same items.

Each method suits a kind of metric, and records, views and the regression check all take
their intervals from here so they cannot disagree:

- an exact-match fraction: the Wilson score interval (it stays inside [0, 1] and does not
  shrink to zero width at 0/n or n/n, as the normal one does);
- any other score, a weighted mean of per-item values (a window's mean NLL, a layer mass),
  optionally on the exp scale (perplexity = exp(mean NLL)): a percentile bootstrap over the
  items, seeded, so the same records give the same interval on every machine;
- a paired difference of two such scores on shared items: the same bootstrap, resampling the
  same items on both sides (what is hard for one model is hard for the other, and pairing
  removes that shared part), or for exact match Newcombe's hybrid score interval for paired
  proportions (his method 10, built from the two Wilson intervals), which, like Wilson's, has
  width where every pair agrees.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

Z95 = 1.96  # two-sided 95 % normal quantile
BOOTSTRAP_RESAMPLES = 2000
Scale = Literal["mean", "exp_mean"]  # the score is the weighted mean of its items' values, or exp of it
SCALES = ("mean", "exp_mean")


@dataclass(frozen=True)
class ItemScores:
    """One metric's per-item values: the score is ``scale`` of their ``weights``-weighted mean."""

    ids: tuple[str, ...]
    values: tuple[float, ...]
    weights: tuple[float, ...]
    scale: Scale = "mean"

    def __post_init__(self) -> None:
        if not len(self.ids) == len(self.values) == len(self.weights):
            raise ValueError("ids, values and weights must have the same length")
        if self.scale not in SCALES:
            raise ValueError(f"scale must be one of {', '.join(SCALES)}, got {self.scale!r}")

    @property
    def n(self) -> int:
        return len(self.ids)

    @property
    def score(self) -> float:
        return aggregate(self.values, self.weights, self.scale)

    @property
    def binary(self) -> bool:
        """Exact-match outcomes: every value 0 or 1, every weight 1, the plain mean."""
        return self.scale == "mean" and all(v in (0.0, 1.0) for v in self.values) and all(
            w == 1.0 for w in self.weights)

    def restricted(self, ids: Sequence[str]) -> ItemScores:
        """The same metric over ``ids`` only, in that order."""
        index = {item: position for position, item in enumerate(self.ids)}
        picked = [index[item] for item in ids]
        return ItemScores(tuple(ids), tuple(self.values[i] for i in picked), tuple(self.weights[i] for i in picked),
                          self.scale)


def aggregate(values: Sequence[float], weights: Sequence[float], scale: Scale) -> float:
    mean = sum(v * w for v, w in zip(values, weights, strict=True)) / sum(weights)
    return math.exp(mean) if scale == "exp_mean" else mean


def mean_stderr(samples: Sequence[float]) -> float | None:
    """Standard error of the mean with the sample (n − 1) variance; None below two samples."""
    if len(samples) < 2:
        return None
    mean = sum(samples) / len(samples)
    variance = sum((s - mean) ** 2 for s in samples) / (len(samples) - 1)
    return math.sqrt(variance / len(samples))


def wilson_interval(hits: int, trials: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a fraction ``hits / trials`` (95 % by default).

    Cells of a length × depth grid hold a handful of prompts, often all right or all wrong;
    the normal (Wald) interval then has zero width and claims certainty, while Wilson's stays
    inside [0, 1] and still says how little 0/2 or 2/2 shows.
    """
    if trials < 1 or not 0 <= hits <= trials:
        raise ValueError(f"need 0 <= hits <= trials and trials >= 1, got {hits}/{trials}")
    fraction, z2 = hits / trials, z * z
    center = (fraction + z2 / (2 * trials)) / (1 + z2 / trials)
    half = z * math.sqrt(fraction * (1 - fraction) / trials + z2 / (4 * trials * trials)) / (1 + z2 / trials)
    return max(0.0, center - half), min(1.0, center + half)


def bootstrap_interval(items: ItemScores, seed: int, resamples: int = BOOTSTRAP_RESAMPLES
                       ) -> tuple[float, float] | None:
    """Percentile bootstrap 95 % interval of ``items.score`` over its items; None below two items."""
    if items.n < 2:
        return None
    stats = _resampled_scores([items], seed, resamples)[0]
    return _percentiles(stats)


@dataclass(frozen=True)
class PairedDifference:
    """``current − baseline`` on the items both scored, with its 95 % interval and how it was found."""

    difference: float
    low: float
    high: float
    n: int
    method: str

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0


def paired_difference(baseline: ItemScores, current: ItemScores, seed: int,
                      resamples: int = BOOTSTRAP_RESAMPLES) -> PairedDifference | None:
    """The paired difference of two metrics on their shared items; None with fewer than two shared items.

    Items are matched by id, so a run that scored more or fewer prompts is compared on the
    ones both have (``n`` says how many).
    """
    shared = [item for item in baseline.ids if item in set(current.ids)]
    if len(shared) < 2 or baseline.scale != current.scale:
        return None
    a, b = baseline.restricted(shared), current.restricted(shared)
    difference = b.score - a.score
    if a.binary and b.binary:
        low, high = newcombe_paired_interval(a.values, b.values)
        return PairedDifference(difference, low, high, len(shared), "Newcombe paired score interval")
    stats_a, stats_b = _resampled_scores([a, b], seed, resamples)
    low, high = _percentiles(stats_b - stats_a)
    return PairedDifference(difference, low, high, len(shared), f"paired bootstrap ({resamples} resamples)")


def newcombe_paired_interval(baseline: Sequence[float], current: Sequence[float], z: float = Z95
                             ) -> tuple[float, float]:
    """95 % interval of mean(current) − mean(baseline) for paired 0/1 outcomes (Newcombe 1998, method 10)."""
    n = len(baseline)
    both = sum(1 for a, b in zip(baseline, current, strict=True) if a and b)
    only_a = sum(1 for a, b in zip(baseline, current, strict=True) if a and not b)
    only_b = sum(1 for a, b in zip(baseline, current, strict=True) if b and not a)
    neither = n - both - only_a - only_b
    p_a, p_b = (both + only_a) / n, (both + only_b) / n
    low_a, high_a = wilson_interval(both + only_a, n, z)
    low_b, high_b = wilson_interval(both + only_b, n, z)
    margins = (both + only_a) * (only_b + neither) * (both + only_b) * (only_a + neither)
    phi = (both * neither - only_a * only_b) / math.sqrt(margins) if margins else 0.0
    difference = p_b - p_a
    down = math.sqrt(max(0.0, (p_b - low_b) ** 2 - 2 * phi * (p_b - low_b) * (high_a - p_a) + (high_a - p_a) ** 2))
    up = math.sqrt(max(0.0, (high_b - p_b) ** 2 - 2 * phi * (high_b - p_b) * (p_a - low_a) + (p_a - low_a) ** 2))
    return max(-1.0, difference - down), min(1.0, difference + up)


def _resampled_scores(sides: list[ItemScores], seed: int, resamples: int) -> list:
    """Each side's score on the same ``resamples`` bootstrap draws of item positions."""
    import numpy as np

    n = sides[0].n
    draws = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    scores = []
    for side in sides:
        values, weights = np.asarray(side.values, dtype=float), np.asarray(side.weights, dtype=float)
        mean = (values * weights)[draws].sum(axis=1) / weights[draws].sum(axis=1)
        scores.append(np.exp(mean) if side.scale == "exp_mean" else mean)
    return scores


def _percentiles(stats) -> tuple[float, float]:
    import numpy as np

    low, high = np.percentile(stats, [2.5, 97.5])
    return float(low), float(high)
