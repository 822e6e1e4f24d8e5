"""The regression check tells noise from change: significance, recorded intervals, noisy points, the switch.

Every run directory here is a FIXTURE: a few hand-made records with made-up numbers, written
to a tmp dir; nothing was measured.
"""

import math
import re

import pytest

from lizard_bench.report.compare import compare_records, compare_runs
from lizard_bench.report.tolerances import load_tolerances
from lizard_bench.report.uncertainty import difference_interval, standard_error
from lizard_bench.results import Record, RunStore

MODEL = "fixture/model"
# Wilson 95 % intervals for a 2-prompt passkey cell (as the long-context probes record them).
ONE_OF_TWO = {"trials": 2, "ci_low": 0.0945, "ci_high": 0.9055}
NONE_OF_TWO = {"trials": 2, "ci_low": 0.0, "ci_high": 0.6576}


def rec(task, metric, value, *, stderr=None, details=None, direction="higher", variant="lizard"):
    return Record(model=MODEL, variant=variant, task=task, metric=metric, value=value, stderr=stderr,
                  direction=direction, details=dict(details or {}))


def baseline_records():
    """FIXTURE: a passkey cell at 1/2, a perplexity with a small stderr, one decode throughput point."""
    return [rec("passkey", "exact_match@1024", 0.5, stderr=0.5, details=ONE_OF_TWO),
            rec("corpus_perplexity", "perplexity", 20.0, stderr=0.2, direction="lower"),
            rec("decode", "tokens_per_s@2048", 50.0, details={"context_length": 2048, "noisy": False})]


def changed(records, metric, **fields):
    """A copy of ``records`` with the record of ``metric`` updated."""
    return [Record(**{**vars(r), **fields}) if r.metric == metric else r for r in records]


def write_run(root, run_id, records):
    """A FIXTURE run directory holding ``records``."""
    store = RunStore(root / run_id)
    store.write_manifest({"run_id": run_id, "config_hash": "fixture", "config": {"name": "fixture",
                                                                            "note": "made-up numbers for tests"}})
    by_unit = {}
    for record in records:
        by_unit.setdefault((record.variant, record.task), []).append(record)
    for (variant, task), unit in by_unit.items():
        store.write_unit(MODEL, variant, task, unit)
    return store.run_dir


def only(comparison, metric):
    (change,) = [c for c in comparison.changes if c.key[3] == metric]
    return change


def test_identical_runs_pass(tmp_path, cli, capsys):
    run = write_run(tmp_path, "a", baseline_records())
    assert cli("compare", run, write_run(tmp_path, "b", baseline_records())) == 0
    assert "PASS: no regressions (3 ok; 3 metrics compared)" in capsys.readouterr().out


def test_one_flipped_passkey_prompt_is_within_noise(tmp_path, cli, capsys):
    flipped = changed(baseline_records(), "exact_match@1024", value=0.0, stderr=0.0, details=NONE_OF_TWO)
    assert cli("compare", write_run(tmp_path, "a", baseline_records()), write_run(tmp_path, "b", flipped)) == 0
    out = capsys.readouterr().out
    (line,) = [line for line in out.splitlines() if "exact_match@1024" in line]
    # stderr 0.5 is usable on the 1/2 side; 0/2 has stderr 0, so its Wilson interval gives se = 0.6576 / 3.92
    half = 1.96 * math.hypot(0.5, 0.6576 / 3.92)
    assert re.split(r"\s{2,}", line)[5:] == [  # outcome, model, variant, task, metric, then these
        "0.5", "0", "-50.00 pts", "±1 pts",
        f"95% CI [{100 * (-0.5 - half):+.2f} pts, {100 * (-0.5 + half):+.2f} pts] includes 0"]
    assert line.startswith("within noise")
    assert "PASS: no regressions (1 within noise, 2 ok; 3 metrics compared)" in out


def test_wilson_interval_stands_in_for_a_zero_stderr():
    assert standard_error(0.0, (0.0, 0.6576)) == pytest.approx(0.6576 / 3.92)
    assert standard_error(None, (0.0945, 0.9055)) == pytest.approx(0.8110 / 3.92)
    assert standard_error(0.0, None) is None and standard_error(None, None) is None
    both_wilson = compare_records([rec("passkey", "exact_match@1024", 0.5, stderr=0.0, details=ONE_OF_TWO)],
                                  [rec("passkey", "exact_match@1024", 0.0, stderr=0.0, details=NONE_OF_TWO)])
    half = 1.96 * math.hypot(0.8110 / 3.92, 0.6576 / 3.92)
    assert both_wilson.changes[0].interval == pytest.approx((-0.5 - half, -0.5 + half))
    assert both_wilson.changes[0].outcome == "within noise"


def test_twenty_percent_worse_perplexity_with_small_stderr_regresses(tmp_path, cli, capsys):
    worse = changed(baseline_records(), "perplexity", value=24.0, stderr=0.24)
    assert cli("compare", write_run(tmp_path, "a", baseline_records()), write_run(tmp_path, "b", worse)) == 1
    out = capsys.readouterr().out
    (line,) = [line for line in out.splitlines() if " perplexity " in line]
    assert line.startswith("REGRESSION") and "+20.00%" in line and "excludes 0" in line
    assert "FAIL: 1 failing metric(s)" in out


def test_stderr_only_records_use_the_combined_stderr():
    # by hand: diff = 0.570 - 0.600 = -0.030; se = sqrt(0.010² + 0.012²)
    # = 0.0156205; half-width 1.96 · 0.0156205 = 0.0306162, so the interval is [-0.0606162, +0.0006162]
    comparison = compare_records([rec("piqa", "acc", 0.600, stderr=0.010)], [rec("piqa", "acc", 0.570, stderr=0.012)])
    (change,) = comparison.changes
    assert change.interval == pytest.approx((-0.0606162, 0.0006162), abs=1e-7)
    assert change.outcome == "within noise" and not comparison.failed
    assert change.note == "95% CI [-6.06 pts, +0.06 pts] includes 0"
    assert difference_interval(0.6, 0.010, 0.57, None) is None
    # a bigger drop with the same stderrs is significant
    assert compare_records([rec("piqa", "acc", 0.600, stderr=0.010)],
                           [rec("piqa", "acc", 0.560, stderr=0.012)]).changes[0].outcome == "regression"


def test_no_interval_keeps_tolerance_only():
    comparison = compare_records([rec("piqa", "acc", 0.60)], [rec("piqa", "acc", 0.58)])
    assert comparison.changes[0].outcome == "regression"
    assert comparison.changes[0].note == "no interval: tolerance only"


def test_a_noisy_efficiency_point_alone_does_not_fail(tmp_path, cli, capsys):
    busy = {"context_length": 2048, "noisy": True, "other_cpu_cores": 1.4}
    slow = changed(baseline_records(), "tokens_per_s@2048", value=20.0, details=busy)
    assert cli("compare", write_run(tmp_path, "a", baseline_records()), write_run(tmp_path, "b", slow)) == 0
    out = capsys.readouterr().out
    (line,) = [line for line in out.splitlines() if "tokens_per_s@2048" in line]
    assert line.startswith("noisy point") and "×0.400" in line
    assert "no interval: tolerance only; measured on a busy machine (details.noisy): cannot fail the check by itself" \
        in line
    # the same slowdown on an idle machine fails
    idle = changed(slow, "tokens_per_s@2048", details={"context_length": 2048, "noisy": False})
    assert compare_records(baseline_records(), idle).failed


def test_significance_switch_off_restores_tolerance_only(tmp_path, cli, capsys):
    flipped = changed(baseline_records(), "exact_match@1024", value=0.0, stderr=0.0, details=NONE_OF_TWO)
    base, current = write_run(tmp_path, "a", baseline_records()), write_run(tmp_path, "b", flipped)
    strict = tmp_path / "tolerances.yaml"
    strict.write_text('metrics:\n  "passkey/exact_match@*": {points: 1, significance: false}\n')
    assert cli("compare", base, current, "--tolerances", strict) == 1
    (line,) = [line for line in capsys.readouterr().out.splitlines() if "exact_match@1024" in line]
    assert line.startswith("REGRESSION") and line.endswith("significance off: tolerance only")
    kind_wide = tmp_path / "kind.yaml"
    kind_wide.write_text("defaults:\n  accuracy: {points: 1, significance: false}\n")
    assert compare_runs(base, current, load_tolerances(kind_wide)).failed
    assert not compare_runs(base, current, load_tolerances(None)).failed
