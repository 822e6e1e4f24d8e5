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

``task/metric`` patterns take precedence over bare metric patterns; within a level the first
listed match wins. Each tolerance names exactly one of ``points``, ``absolute``,
``relative``, ``ratio``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path

import yaml

from lizard_bench.report.metrics import metric_kind, split_metric
from lizard_bench.report.runs import ReportError

MODES = ("points", "absolute", "relative", "ratio")
KINDS = ("accuracy", "perplexity", "throughput", "memory", "other")
_EPS = 1e-12  # float noise never counts as a move


@dataclass(frozen=True)
class Tolerance:
    """An allowed move: ``points`` (percentage points of a fraction), ``absolute``, ``relative`` or ``ratio``."""

    mode: str
    amount: float

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


def load_tolerances(path: str | Path | None) -> Tolerances:
    """The built-in defaults when ``path`` is None, else the defaults overridden by the YAML file."""
    if path is None:
        return Tolerances()
    path = Path(path)
    if not path.is_file():
        raise ReportError(f"{path}: tolerance file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ReportError(f"{path}{line}: malformed YAML: {getattr(exc, 'problem', None) or exc}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ReportError(f"{path}: the top level must be a mapping with 'defaults' and/or 'metrics'")
    unknown = sorted(set(data) - {"defaults", "metrics"})
    if unknown:
        raise ReportError(f"{path}: unknown key(s) {', '.join(map(str, unknown))} (known: defaults, metrics)")
    tolerances = Tolerances(source=str(path))
    for kind, spec in _mapping(data.get("defaults"), path, "defaults").items():
        if kind not in KINDS:
            raise ReportError(f"{path}: unknown metric kind 'defaults.{kind}' (known: {', '.join(KINDS)})")
        tolerances.defaults[kind] = _tolerance(spec, path, f"defaults.{kind}")
    for pattern, spec in _mapping(data.get("metrics"), path, "metrics").items():
        tolerances.overrides.append((str(pattern), _tolerance(spec, path, f"metrics.{pattern}")))
    return tolerances


def _mapping(value, path: Path, name: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ReportError(f"{path}: '{name}' must be a mapping")
    return value


def _tolerance(spec, path: Path, where: str) -> Tolerance:
    if not isinstance(spec, dict) or len(spec) != 1:
        raise ReportError(f"{path}: '{where}' must name exactly one of {', '.join(MODES)}, e.g. {{relative: 0.01}}")
    (mode, amount), = spec.items()
    if mode not in MODES:
        raise ReportError(f"{path}: '{where}': unknown tolerance '{mode}' (use one of {', '.join(MODES)})")
    if isinstance(amount, bool) or not isinstance(amount, (int, float)) or amount < 0:
        raise ReportError(f"{path}: '{where}.{mode}' must be a non-negative number, got {amount!r}")
    if mode == "ratio" and not 0 < amount <= 1:
        raise ReportError(f"{path}: '{where}.ratio' must be in (0, 1], e.g. 0.8 allows a 20% slowdown")
    return Tolerance(mode, float(amount))
