"""How far a number may move before a comparison calls it a regression.

Metrics move differently, so tolerances have a kind each: accuracy in absolute percentage
points (a 1-point drop means the same at 30% and at 80%), perplexity relative to the baseline
(its scale depends on the corpus and tokenizer), throughput as a ratio (CI machines are noisy;
only a large slowdown is a signal). Defaults are per metric kind; a YAML file overrides them
per kind or per metric::

    defaults:                       # per kind: accuracy, perplexity, throughput, memory, other
      accuracy: {points: 0.5}
      throughput: {ratio: 0.8}      # current may be as low as 0.8x (or, lower-is-better, 1.25x)
    metrics:                        # 'metric' or 'task/metric'; shell-style wildcards allowed
      corpus_perplexity/perplexity: {relative: 0.002}
      "decode/latency_s@*": {ratio: 0.7}
      nll: {absolute: 0.01}
      "passkey/exact_match@*": {points: 1, significance: false}   # fail on any 1-point drop

``task/metric`` patterns take precedence over bare metric patterns; within a level the first
listed match wins. Each tolerance names exactly one of ``points``, ``absolute``,
``relative``, ``ratio``, and optionally ``significance`` (default true): whether a move past
the tolerance must also be significant (its 95 % interval excludes 0) to count. Turning it off
restores tolerance-only judging for metrics whose recorded uncertainty is not trusted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path

from lizard_bench.config import read_yaml
from lizard_bench.report.metrics import metric_kind, split_metric
from lizard_bench.report.runs import ReportError
from lizard_bench.typed_config import build, rule

MODES = ("points", "absolute", "relative", "ratio")
KINDS = ("accuracy", "perplexity", "throughput", "memory", "other")
_EPS = 1e-12  # float noise never counts as a move


@dataclass(frozen=True)
class Tolerance:
    """An allowed move: ``points`` (percentage points of a fraction), ``absolute``, ``relative`` or ``ratio``."""

    mode: str
    amount: float
    significance: bool = True  # a move past the tolerance must also be significant to count

    def worse_and_better(self, baseline: float, current: float, direction: str) -> tuple[bool, bool]:
        """Whether ``current`` moved past the tolerance in the bad and in the good direction."""
        if self.mode == "ratio":
            low, high = baseline * self.amount, baseline / self.amount if self.amount else float("inf")
            low, high = min(low, high), max(low, high)  # a negative baseline flips the band
            below, above = current < low - _EPS, current > high + _EPS
            return (below, above) if direction == "higher" else (above, below)
        limit = {"points": self.amount / 100, "absolute": self.amount, "relative": self.amount * abs(baseline)}[
            self.mode]
        worsened_by = baseline - current if direction == "higher" else current - baseline
        return worsened_by > limit + _EPS, -worsened_by > limit + _EPS

    def change(self, baseline: float, current: float) -> str:
        """The move, in this tolerance's terms."""
        if self.mode == "points":
            return f"{100 * (current - baseline):+.2f} pts"
        if self.mode == "ratio":
            return f"×{current / baseline:.3f}" if baseline else "n/a (baseline 0)"
        if self.mode == "relative":
            return f"{100 * (current - baseline) / abs(baseline):+.2f}%" if baseline else f"{current - baseline:+.4g}"
        return f"{current - baseline:+.4g}"

    def describe(self, direction: str = "higher") -> str:
        if self.mode == "points":
            return f"±{self.amount:g} pts"
        if self.mode == "relative":
            return f"±{100 * self.amount:g}%"
        if self.mode == "ratio":
            return f"≥×{self.amount:g}" if direction == "higher" else f"≤×{1 / self.amount:.3g}"
        return f"±{self.amount:g}"


DEFAULT_TOLERANCES: dict[str, Tolerance] = {
    "accuracy": Tolerance("points", 1.0),
    "perplexity": Tolerance("relative", 0.01),
    "throughput": Tolerance("ratio", 0.5),
    "memory": Tolerance("relative", 0.10),
    "other": Tolerance("relative", 0.05),
}


@dataclass
class Tolerances:
    """Per-kind defaults plus per-metric overrides; ``source`` says where they came from (for the summary)."""

    defaults: dict[str, Tolerance] = field(default_factory=lambda: dict(DEFAULT_TOLERANCES))
    overrides: list[tuple[str, Tolerance]] = field(default_factory=list)
    source: str = "built-in defaults"

    def for_metric(self, task: str, metric: str) -> Tolerance:
        qualified = f"{task}/{metric}"
        for pattern, tolerance in self.overrides:
            if "/" in pattern and fnmatchcase(qualified, pattern):
                return tolerance
        base = split_metric(metric).base
        for pattern, tolerance in self.overrides:
            if "/" not in pattern and (fnmatchcase(metric, pattern) or fnmatchcase(base, pattern)):
                return tolerance
        return self.defaults[metric_kind(base)]


NON_NEGATIVE = rule(lambda amount: amount is None or amount >= 0, "must be a non-negative number")


@dataclass(frozen=True)
class ToleranceSpec:
    """One tolerance as a file writes it: exactly one of the four modes."""

    points: float | None = field(default=None, metadata=NON_NEGATIVE)
    absolute: float | None = field(default=None, metadata=NON_NEGATIVE)
    relative: float | None = field(default=None, metadata=NON_NEGATIVE)
    ratio: float | None = field(default=None, metadata=rule(lambda r: r is None or 0 < r <= 1,
                                                            "must be in (0, 1], e.g. 0.8 allows a 20% slowdown"))
    significance: bool = True

    def __post_init__(self) -> None:
        if sum(getattr(self, mode) is not None for mode in MODES) != 1:
            raise ValueError(f"must name exactly one of {', '.join(MODES)}, e.g. {{relative: 0.01}}")

    def tolerance(self) -> Tolerance:
        mode = next(mode for mode in MODES if getattr(self, mode) is not None)
        return Tolerance(mode, getattr(self, mode), self.significance)


@dataclass(frozen=True)
class KindDefaults:
    accuracy: ToleranceSpec | None = None
    perplexity: ToleranceSpec | None = None
    throughput: ToleranceSpec | None = None
    memory: ToleranceSpec | None = None
    other: ToleranceSpec | None = None


@dataclass(frozen=True)
class ToleranceFile:
    defaults: KindDefaults | None = None
    metrics: dict[str, ToleranceSpec] | None = None


def load_tolerances(path: str | Path | None) -> Tolerances:
    """The built-in defaults when ``path`` is None, else the defaults overridden by the YAML file."""
    if path is None:
        return Tolerances()
    path = Path(path)
    if not path.is_file():
        raise ReportError(f"{path}: tolerance file not found")
    data, lines = read_yaml(path, error=ReportError)
    spec = build(ToleranceFile, data, where=str(path), lines=lines, error=ReportError)
    tolerances = Tolerances(source=str(path))
    for kind in KINDS:
        given = getattr(spec.defaults, kind, None)
        if given is not None:
            tolerances.defaults[kind] = given.tolerance()
    tolerances.overrides = [(pattern, given.tolerance()) for pattern, given in (spec.metrics or {}).items()]
    return tolerances
