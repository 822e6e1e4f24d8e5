"""The end-of-run console summary: headline metrics by variant, in the report's units, with ratios to the teacher."""

from __future__ import annotations

from lizard_bench.report.console import headline_records, noisy_warning, summary_table
from lizard_bench.results import Record


def record(variant: str, task: str, metric: str, value: float | None, direction: str = "higher",
           status: str = "ok", details: dict | None = None) -> Record:
    return Record(model="m", variant=variant, task=task, metric=metric, value=value, direction=direction,
                  status=status, details=details or {})


RECORDS = [  # FIXTURE: invented values
    record("softmax", "corpus_perplexity", "perplexity", 10.0, "lower"),
    record("lizard", "corpus_perplexity", "perplexity", 25.0, "lower"),
    record("softmax", "passkey", "exact_match", 0.75),
    record("softmax", "passkey", "exact_match@1024", 1.0),
    record("lizard", "passkey", "exact_match", None, status="error"),
    record("softmax", "decode", "tokens_per_s@512", 20.0),
    record("softmax", "decode", "tokens_per_s@8192", 8.0),
    record("lizard", "decode", "tokens_per_s@8192", 12.0),
    record("softmax", "decode", "tokens_per_s@32768", None, status="timeout"),
    record("lizard", "decode", "tokens_per_s@32768", 11.0),
    record("softmax", "memory", "cache_bytes@8192", 360 * 1024**2, "lower"),
]


def test_headlines_are_point_free_metrics_or_the_longest_sweep_point_the_teacher_measured():
    chosen = {(r.variant, r.metric) for r in headline_records(RECORDS)}
    assert ("softmax", "exact_match") in chosen and ("softmax", "exact_match@1024") not in chosen
    assert ("softmax", "tokens_per_s@8192") in chosen and ("softmax", "tokens_per_s@512") not in chosen
    assert ("lizard", "tokens_per_s@8192") in chosen, "32K has no teacher value to compare with"
    assert ("lizard", "tokens_per_s@32768") not in chosen


def test_one_warning_names_the_points_measured_on_a_busy_machine():
    assert noisy_warning(RECORDS) is None
    busy = {"noisy": True, "context_length": 512, "other_cpu_cores": 1.2}
    noisy = [*RECORDS, record("softmax", "decode", "tokens_per_s@512", 2.0, details=busy),
             record("softmax", "decode", "cache_bytes@512", 1.0, "lower", details=busy)]
    warning = noisy_warning(noisy)
    assert warning is not None and "1 efficiency point(s)" in warning and "\n" not in warning


def test_the_summary_puts_variants_side_by_side_in_report_units():
    text = summary_table(RECORDS)
    header = next(line for line in text.splitlines() if "softmax" in line)
    assert header.index("softmax") < header.index("lizard"), "the teacher comes first"
    perplexity = next(line for line in text.splitlines() if line.startswith("corpus_perplexity perplexity"))
    assert "↓" in perplexity and "10" in perplexity and "25 (2.50×)" in perplexity
    passkey = next(line for line in text.splitlines() if line.startswith("passkey exact_match"))
    assert "%" in passkey and "75.0" in passkey and "error" in passkey
    assert "12.0 (1.50×)" in text and "360.0" in text and "MiB" in text


def test_a_recorded_95_percent_interval_follows_the_value():
    gain = {"ci_low": 0.9, "ci_high": 0.98}  # FIXTURE: invented interval of an invented ratio
    text = summary_table([
        record("softmax", "length_extrapolation", "context_gain@4096", 1.0, "lower", details=gain),
        record("lizard", "length_extrapolation", "context_gain@4096", 0.94, "lower", details=gain),
    ])
    line = next(line for line in text.splitlines() if line.startswith("length_extrapolation context_gain@4096"))
    assert "1 [0.9, 0.98]" in line and "0.94 [0.9, 0.98] (0.94×)" in line
