"""Turning per-item outcomes into metric values named by their grid point, and into per-item rows.

Names follow the report's convention (``base@length:depth``): ``exact_match@4096:0.5`` for
one cell, ``exact_match@4096`` for a length over all depths, ``exact_match`` overall. The
report reads the grid point from ``details`` (``context_length``, ``depth``), so those keys
carry the *target* values; the prompt lengths actually built are recorded beside them.

Every value comes with the rows it was computed from (one per prompt or window: what was
asked, what came back, which metrics it counts in), which the task writes beside the run's
records so a score can be traced to its items and two variants compared item by item.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from lizard_bench.long_context.generation import Outcome
from lizard_bench.results.intervals import Z95, ItemScores, Scale, bootstrap_interval, mean_stderr, wilson_interval
from lizard_bench.tasks.api import MetricValue

SCORING_RULE = "first run of digits in the greedy continuation equals the answer"
Z_95 = Z95  # two-sided 95 % normal quantile, for every interval the probes report
WILSON = "Wilson score interval over the prompts"

# maps an outcome to (metric name, details that identify its group), or None to leave it out
Grouping = Callable[[Outcome], tuple[str, dict[str, Any]] | None]

__all__ = ["SCORING_RULE", "Z_95", "accuracy_by", "item_value", "mean_stderr", "point", "score_outcomes",
           "wilson_interval"]


def point(base: str, *parts: object) -> str:
    """``point('exact_match', 4096, 0.5)`` -> ``'exact_match@4096:0.5'``; floats in their shortest form."""
    if not parts:
        return base
    return f"{base}@" + ":".join(format(p, "g") if isinstance(p, float) else str(p) for p in parts)


def score_outcomes(outcomes: Sequence[Outcome], groupings: Sequence[Grouping], item_prefix: str
                   ) -> tuple[list[MetricValue], list[dict[str, Any]]]:
    """Accuracies for every grouping (in order), and one row per prompt naming the metrics it counts in.

    ``item_prefix`` names what the prompts depend on beyond their grid point (the seed), so items
    pair only with the same prompt in another run or variant.
    """
    values = [value for grouping in groupings for value in accuracy_by(outcomes, grouping)]
    rows = []
    for outcome in outcomes:
        hit = 1.0 if outcome.correct else 0.0
        names = [key[0] for key in (grouping(outcome) for grouping in groupings) if key is not None]
        prompt = outcome.prompt
        rows.append({"item": f"{item_prefix}:{prompt.item}", "scores": dict.fromkeys(names, hit), "weight": 1.0,
                     "cell": list(prompt.cell), "trial": prompt.trial, **prompt.details,
                     "expected": prompt.answer, "produced": outcome.generated, "correct": outcome.correct})
    return values, rows


def accuracy_by(outcomes: Sequence[Outcome], grouping: Grouping) -> list[MetricValue]:
    """One accuracy per group, in order of first appearance, with its stderr, Wilson interval and what was measured."""
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
        values.append(MetricValue(
            metric=name,
            value=sum(hits) / len(hits),
            stderr=mean_stderr(hits),
            n=len(hits),
            interval=wilson_interval(int(sum(hits)), len(hits)),
            details={
                **details,
                "trials": len(members),
                "interval": WILSON,
                "prompt_tokens_min": min(lengths),
                "prompt_tokens_max": max(lengths),
                "sample_output": members[0].generated[:80],
                "scoring": SCORING_RULE,
            },
        ))
    return values


def item_value(metric: str, rows: Sequence[dict[str, Any]], scale: Scale, seed: int, details: dict[str, Any]
               ) -> MetricValue:
    """The metric over the rows that score it: their weighted mean (exp of it for ``exp_mean``), the stderr
    of that mean over items (delta method on the exp scale), and a percentile bootstrap interval over items
    seeded by ``seed``. Items are windows or prompts: the independent units, not the tokens inside them."""
    scored = [row for row in rows if metric in row["scores"]]
    items = ItemScores(tuple(row["item"] for row in scored), tuple(row["scores"][metric] for row in scored),
                       tuple(float(row["weight"]) for row in scored), scale)
    value = items.score
    stderr = mean_stderr(list(items.values)) if len(set(items.weights)) == 1 else None
    if stderr is not None and scale == "exp_mean":
        stderr *= value  # se(exp(x)) ≈ exp(x) · se(x)
    interval = bootstrap_interval(items, seed)
    method = f"percentile bootstrap over {items.n} items (seed {seed})" if interval else "none: a single item"
    return MetricValue(metric=metric, value=value, stderr=stderr, n=items.n, interval=interval,
                       details={**details, "item_scale": scale, "interval": method})
