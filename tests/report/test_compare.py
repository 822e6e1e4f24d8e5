"""Regression check: tolerances by kind and direction, missing/new metrics, statuses, CLI exit codes, summary."""

import json
import math
import shutil

import pytest

from lizard_bench.errors import InputError
from lizard_bench.report.compare import compare_records, compare_runs
from lizard_bench.report.runs import ReportError
from lizard_bench.report.tolerances import Tolerance, Tolerances, load_tolerances
from lizard_bench.results import Record
from tests.report.conftest import REPO

BASELINE = REPO / "results" / "baseline"


def rec(metric="acc", value=0.5, *, task="piqa", direction="higher", status="ok", variant="softmax"):
    return Record(model="m", variant=variant, task=task, metric=metric, value=value if status == "ok" else None,
                  status=status, direction=direction, reason=None if status == "ok" else "because")


def outcome(baseline, current, tolerances=None):
    comparison = compare_records([baseline], [current], tolerances)
    (change,) = comparison.changes
    return change.outcome


@pytest.mark.parametrize(("tolerance", "baseline", "current", "direction", "expected"), [
    (Tolerance("points", 1.0), 0.600, 0.591, "higher", (False, False)),  # -0.9 points: within
    (Tolerance("points", 1.0), 0.600, 0.589, "higher", (True, False)),
    (Tolerance("points", 1.0), 0.600, 0.611, "higher", (False, True)),
    (Tolerance("relative", 0.01), 10.0, 10.09, "lower", (False, False)),
    (Tolerance("relative", 0.01), 10.0, 10.2, "lower", (True, False)),
    (Tolerance("relative", 0.01), 10.0, 9.8, "lower", (False, True)),
    (Tolerance("ratio", 0.5), 100.0, 51.0, "higher", (False, False)),
    (Tolerance("ratio", 0.5), 100.0, 49.0, "higher", (True, False)),
    (Tolerance("ratio", 0.5), 100.0, 201.0, "higher", (False, True)),
    (Tolerance("ratio", 0.5), 1.0, 2.1, "lower", (True, False)),  # latency doubled and more
    (Tolerance("absolute", 0.05), 2.0, 2.06, "lower", (True, False)),
    (Tolerance("absolute", 0.0), 2.0, 2.0, "lower", (False, False)),
])
def test_tolerance_modes_and_directions(tolerance, baseline, current, direction, expected):
    assert tolerance.worse_and_better(baseline, current, direction) == expected


def test_default_tolerances_per_metric_kind():
    tolerances = Tolerances()
    assert tolerances.for_metric("piqa", "acc_norm") == Tolerance("points", 1.0)
    assert tolerances.for_metric("passkey", "exact_match@4096:0.5") == Tolerance("points", 1.0)
    assert tolerances.for_metric("corpus_perplexity", "perplexity") == Tolerance("relative", 0.01)
    assert tolerances.for_metric("decode", "tokens_per_s@2048") == Tolerance("ratio", 0.5)
    assert tolerances.for_metric("memory", "peak_memory_bytes@2048").mode == "relative"


def test_only_bad_moves_past_tolerance_fail():
    assert outcome(rec(value=0.60), rec(value=0.58)) == "regression"
    assert outcome(rec(value=0.60), rec(value=0.62)) == "improved"
    assert outcome(rec(value=0.60), rec(value=0.595)) == "ok"
    ppl = dict(task="corpus_perplexity", metric="perplexity", direction="lower")
    assert outcome(rec(value=10.0, **ppl), rec(value=11.0, **ppl)) == "regression"
    assert outcome(rec(value=10.0, **ppl), rec(value=9.0, **ppl)) == "improved"


def test_missing_fails_and_new_is_reported():
    comparison = compare_records([rec("acc"), rec("f1")], [rec("acc"), rec("mcc")])
    assert {c.key[3]: c.outcome for c in comparison.changes} == {"acc": "ok", "f1": "missing", "mcc": "new"}
    assert comparison.failed
    assert not compare_records([rec("acc")], [rec("acc"), rec("mcc")]).failed


@pytest.mark.parametrize(("before", "after", "expected"), [
    ("ok", "oom", "regression"),
    ("ok", "unavailable", "regression"),
    ("oom", "ok", "improved"),
    ("oom", "oom", "ok"),
    ("unavailable", "error", "regression"),
    ("error", "unavailable", "ok"),
])
def test_status_transitions(before, after, expected):
    assert outcome(rec(status=before), rec(status=after)) == expected


def test_duplicate_records_are_refused():
    with pytest.raises(ReportError, match="two records for m/softmax/piqa/acc"):
        compare_records([rec(), rec()], [rec()])


def degraded_copy(tmp_path, factor=1.05):
    """A copy of the committed baseline with perplexity made worse by ``factor`` (a deliberate regression)."""
    copy = tmp_path / "degraded"
    shutil.copytree(BASELINE, copy)
    for path in (copy / "records").rglob("*.json"):
        records = json.loads(path.read_text())
        for record in records:
            if record["metric"] == "perplexity":
                record["value"] *= factor
            elif record["metric"] == "nll":
                record["value"] += math.log(factor)
        path.write_text(json.dumps(records, indent=2))
    return copy


def test_committed_baseline_exists_and_compares_clean(cli, capsys):
    assert (BASELINE / "manifest.json").is_file(), "results/baseline/ must be committed (see README, Baselines)"
    assert cli("compare", BASELINE, BASELINE) == 0
    out = capsys.readouterr().out
    assert "PASS: no regressions" in out and "corpus_perplexity" in out


def test_degraded_baseline_fails_with_exit_1_and_a_summary(cli, tmp_path, capsys):
    degraded = degraded_copy(tmp_path, factor=1.20)
    summary = tmp_path / "ci" / "summary.md"
    variants = {path.parent.name for path in (BASELINE / "records").rglob("corpus_perplexity.json")}
    assert cli("compare", BASELINE, degraded, "--summary", summary) == 1
    out = capsys.readouterr().out
    # a 20% worse perplexity is past the 1% tolerance and, with a ~5% stderr, significant for every variant
    regressed = [line for line in out.splitlines() if line.startswith("REGRESSION") and " perplexity " in line]
    assert len(regressed) == len(variants) and all("+20.00%" in line and "excludes 0" in line for line in regressed)
    assert "FAIL:" in out
    text = summary.read_text()
    assert text.startswith("## ❌ lizard-bench compare: FAIL")
    assert "### Regressions (" in text and "<details>" in text
    # the other way round the same move is an improvement, reported but passing
    assert cli("compare", degraded, BASELINE) == 0
    assert "improved" in capsys.readouterr().out


def test_five_percent_worse_perplexity_is_within_its_noise(cli, tmp_path, capsys):
    """The baseline's perplexity stderr is ~5%: a 5% move is past the 1% tolerance but not significant."""
    assert cli("compare", BASELINE, degraded_copy(tmp_path), "--summary", tmp_path / "summary.md") == 0
    out = capsys.readouterr().out
    noise = [line for line in out.splitlines() if line.startswith("within noise") and " perplexity " in line]
    assert noise and all("+5.00%" in line and "includes 0" in line for line in noise)
    assert "### Within noise (past the tolerance, not significant)" in (tmp_path / "summary.md").read_text()


def test_tolerance_file_overrides_per_metric(cli, tmp_path):
    degraded = degraded_copy(tmp_path, factor=1.20)
    loose = tmp_path / "tolerances.yaml"
    loose.write_text("metrics:\n  corpus_perplexity/perplexity: {relative: 0.25}\n  nll: {absolute: 0.2}\n")
    assert cli("compare", BASELINE, degraded, "--tolerances", loose) == 0
    strict = tmp_path / "strict.yaml"
    strict.write_text("defaults:\n  perplexity: {relative: 0.0001}\n")
    assert compare_runs(BASELINE, BASELINE, load_tolerances(strict)).counts()["regression"] == 0
    assert compare_runs(BASELINE, degraded, load_tolerances(strict)).tolerances_source == str(strict)


@pytest.mark.parametrize(("text", "message"), [
    ("metrics: [1, 2", "malformed YAML"),
    ("- a\n- b\n", "top level must be a mapping"),
    ("default:\n  accuracy: {points: 1}\n", "unknown key"),
    ("defaults:\n  speed: {ratio: 0.5}\n", r"unknown key 'defaults\.speed' \(known: accuracy, memory, other"),
    ("metrics:\n  acc: {percent: 1}\n", r"unknown key 'metrics\.acc\.percent' \(known: absolute, points"),
    ("metrics:\n  acc: {points: 1, relative: 0.1}\n", "exactly one of"),
    ("metrics:\n  acc: {points: -1}\n", "non-negative number"),
    ("defaults:\n  throughput: {ratio: 2}\n", r"must be in \(0, 1\]"),
])
def test_malformed_tolerance_files_are_one_line_errors(tmp_path, text, message):
    path = tmp_path / "tol.yaml"
    path.write_text(text)
    with pytest.raises(ReportError, match=message) as error:
        load_tolerances(path)
    assert "\n" not in str(error.value) and str(error.value).startswith(f"{path}:")  # file:line
    with pytest.raises(ReportError, match="not found"):
        load_tolerances(tmp_path / "missing.yaml")


def test_bad_run_directories_are_user_errors(cli, tmp_path):
    with pytest.raises(ReportError, match="no such run directory"):
        cli("compare", BASELINE, tmp_path / "missing")
    # the CLI prints user errors (InputError and subclasses) as one line with exit status 2
    assert issubclass(ReportError, InputError)
