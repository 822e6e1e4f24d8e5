"""What metric names mean: kinds and units, the measuring point in a name, and the paper's task set.

A record says what its task declares about it: the task's label, whether higher or lower is
better, and whether the metric is the task's headline (``lizard_bench.results.schema``), so
nothing here is about a particular task. What stays is the metrics' vocabulary: tables, plots
and the regression check all need to know that ``acc_norm`` is a fraction to show in percentage
points, that ``perplexity`` moves relatively, and that ``tokens_per_s@2048`` is a throughput at a
2048-token context. Keeping that in one place means the views cannot disagree about it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from lizard_bench.evaluation.catalog import TASK_SPECS

TEACHER_VARIANT = "softmax"

# The paper's Table 1 tasks, in its column order (the lm-eval catalog's; their records say which metric it reports).
PAPER_TASKS: tuple[str, ...] = tuple(spec.name for spec in TASK_SPECS if spec.paper_metric)
FIVE_TASKS: tuple[str, ...] = PAPER_TASKS[:5]  # the paper's "average without MMLU"

EFFICIENCY_TASKS: tuple[str, ...] = ("prefill", "decode", "memory")
LONG_CONTEXT_TASKS: tuple[str, ...] = ("passkey", "needle")

# Metrics whose values are fractions in [0, 1] (shown and compared in percentage points).
FRACTION_METRICS = frozenset({"acc", "acc_norm", "accuracy", "exact_match", "exact_match_within_window",
                              "exact_match_beyond_window", "em", "f1", "mcc", "contains", "match"})
PERPLEXITY_METRICS = frozenset({"perplexity", "nll", "word_perplexity", "byte_perplexity", "bits_per_byte", "loss"})
THROUGHPUT_METRICS = frozenset({"tokens_per_s", "latency_s", "time_s", "throughput"})

QUANTITY_LABELS: dict[str, str] = {
    "tokens_per_s": "tokens/s",
    "latency_s": "latency (s)",
    "time_s": "time (s)",
    "peak_memory_bytes": "prefill peak memory (MiB)",
    "decode_peak_memory_bytes": "decode peak memory (MiB)",
    "decode_growth_bytes": "decode growth (MiB)",
    "cache_bytes": "cache (MiB)",
}

MIB = 1024**2


@dataclass(frozen=True)
class MetricName:
    """A metric name split into its quantity and the point it was measured at.

    ``tokens_per_s@2048`` -> base ``tokens_per_s``, length 2048;
    ``exact_match@4096:0.5`` -> base ``exact_match``, length 4096, depth 0.5.
    """

    base: str
    context_length: int | None = None
    depth: float | None = None


def split_metric(metric: str) -> MetricName:
    base, sep, point = metric.partition("@")
    if not sep:
        return MetricName(metric)
    length_text, _, depth_text = point.partition(":")
    return MetricName(base, _parse_int(length_text), _parse_float(depth_text))


def metric_kind(base: str) -> str:
    """'accuracy', 'perplexity', 'throughput', 'memory' or 'other': decides default tolerances and units."""
    if base in FRACTION_METRICS:
        return "accuracy"
    if base in PERPLEXITY_METRICS:
        return "perplexity"
    if base in THROUGHPUT_METRICS:
        return "throughput"
    if base.endswith("_bytes"):
        return "memory"
    return "other"


def is_fraction(base: str) -> bool:
    return base in FRACTION_METRICS


def display_scale(base: str) -> float:
    """Factor from the stored value to the shown one: fractions as percentage points, bytes as MiB."""
    if is_fraction(base):
        return 100.0
    if base.endswith("_bytes"):
        return 1.0 / MIB
    return 1.0


def unit_suffix(base: str) -> str:
    if is_fraction(base):
        return " (%)"
    if base.endswith("_bytes"):
        return " (MiB)"
    return ""


def metric_label(task_label: str, base: str, direction: str = "higher") -> str:
    """Column header for a task's metric, with its unit and an arrow where lower is better."""
    arrow = " ↓" if direction == "lower" else ""
    return f"{task_label} {base}{unit_suffix(base)}{arrow}"


def quantity_label(base: str) -> str:
    return QUANTITY_LABELS.get(base, base.replace("_bytes", " (MiB)") if base.endswith("_bytes") else base)


def format_number(value: float, base: str = "") -> str:
    """A display string for an already scaled value: one decimal for percentages and MiB, else 4 digits."""
    if not math.isfinite(value):
        return str(value)
    if is_fraction(base) or base.endswith("_bytes") or base == "tokens_per_s":
        return f"{value:,.1f}"
    if abs(value) >= 1e4:
        return f"{value:,.0f}"
    return f"{value:.4g}"


def interval_text(interval: tuple[float, float] | None, base: str) -> str | None:
    """A record's 95 % interval as ``[low, high]`` in display units, else None.

    Shown instead of ± stderr: a 0/2 exact match has a stderr of 0 but an interval of
    [0, 65.8] %, and a ratio's interval is not symmetric around it.
    """
    if interval is None:
        return None
    scale = display_scale(base)
    return f"[{format_number(interval[0] * scale, base)}, {format_number(interval[1] * scale, base)}]"


def _parse_int(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def _parse_float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None
