"""Per-item outcomes of every built-in task, the records they reproduce, and what pairing them tells apart.

One tiny-model run (random weights, a FIXTURE corpus of made-up lines) of the teacher and a
16-token window control on every built-in score task; changed copies of it are compared with
the baseline as ``lizard-bench compare`` would.
"""

import json
import math

import pytest

from lizard_bench.config import load_config
from lizard_bench.report.compare import compare_runs
from lizard_bench.report.pairing import items_of
from lizard_bench.report.uncertainty import difference_interval, standard_error
from lizard_bench.results import RunStore
from lizard_bench.results.rescore import changed_copy, flip_first_prompt, perplexity_scaled
from lizard_bench.results.samples import samples_path
from lizard_bench.runner import run_suite
from tests.tiny_models import save_tiny_llama

TASK_OPTIONS = {
    "length_extrapolation": {"lengths": [32, 64], "tail_tokens": 8, "windows": 3},
    "passkey": {"lengths": [192, 256], "depths": [0.25, 0.75], "trials": 2, "max_new_tokens": 4},
    "needle": {"lengths": [320], "depths": [0.5], "trials": 2, "max_new_tokens": 4},
    "assoc_recall": {"pairs": [2, 3], "trials": 2, "max_new_tokens": 4},
    "attention_reach": {"length": 64, "windows": 2, "window": 16},
}
SCORE_TASKS = ["corpus_perplexity", *TASK_OPTIONS]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("items")
    corpus = root / "corpus.jsonl"  # FIXTURE: made-up numbered lines
    corpus.write_text("".join(json.dumps({"id": f"d{d}", "text": "".join(
        f"Line {i} of document {d}: the quick brown fox jumps over the lazy dog.\n" for i in range(12))}) + "\n"
        for d in range(60)))
    config = load_config(None, {
        "models": [str(save_tiny_llama(root / "tiny"))], "variants": ["softmax", "swa"], "tasks": SCORE_TASKS,
        "corpus": str(corpus), "results_dir": str(root / "results"), "run_id": "base", "device": "cpu",
        "perplexity.seq_len": 32, "perplexity.max_tokens": 256, "task_options": TASK_OPTIONS,
        "variant_options": {"swa": {"window": 16}}})
    return run_suite(config).run_dir


def records_of(run, task=None):
    return [r for r in RunStore(run).read_records() if task is None or r.task == task]


def unit(run, variant, task):
    """(model, variant, task) of the run's one model."""
    return records_of(run)[0].model, variant, task


def rows_of(run, variant, task):
    return [json.loads(line) for line in samples_path(run, *unit(run, variant, task)).read_text().splitlines()]


def test_every_built_in_task_keeps_items_that_reproduce_its_records(run_dir):
    for variant in ("softmax", "swa"):
        for task in SCORE_TASKS:
            assert samples_path(run_dir, *unit(run_dir, variant, task)).is_file(), (variant, task)
    for record in records_of(run_dir):
        assert record.status == "ok", (record.key, record.reason)
        items = items_of(run_dir, record)  # None unless the items' mean reproduces the record's value
        assert items is not None, record.key
        assert items.n == record.n and math.isclose(items.score, record.value, rel_tol=1e-9)
        assert record.interval is not None and record.interval[0] <= record.value <= record.interval[1], record.key
        assert record.details["interval"]


def test_a_probe_row_says_what_was_asked_and_answered(run_dir):
    rows = rows_of(run_dir, "softmax", "passkey")
    assert len(rows) == 8 and len({row["item"] for row in rows}) == 8
    row = rows[0]
    assert {"expected", "produced", "correct", "prompt_tokens", "needle_position", "trial", "cell"} <= set(row)
    assert row["scores"]["exact_match"] == float(row["correct"])
    window = rows_of(run_dir, "softmax", "length_extrapolation")
    assert [len(row["token_nll"]["64"]) for row in window] == [8, 8, 8]


def test_identical_runs_pass(run_dir, tmp_path):
    copy = changed_copy(run_dir, tmp_path / "same", unit(run_dir, "swa", "passkey"), lambda rows: rows)
    comparison = compare_runs(run_dir, copy)
    assert not comparison.failed and set(comparison.counts()) >= {"ok"}
    assert comparison.counts()["ok"] == len(comparison.changes)


def test_one_flipped_prompt_of_a_two_prompt_cell_is_within_noise(run_dir, tmp_path, cli, capsys):
    flipped = changed_copy(run_dir, tmp_path / "flipped", unit(run_dir, "swa", "passkey"), flip_first_prompt)
    comparison = compare_runs(run_dir, flipped)
    moved = {c.key[3]: c for c in comparison.changes if c.outcome != "ok"}
    cell = next(name for name in moved if name.count(":") == 1)  # exact_match@L:d, a cell of two prompts
    assert moved[cell].outcome == "within noise" and "paired over 2 items" in moved[cell].note
    assert all(change.outcome == "within noise" for change in moved.values())
    assert cli("compare", run_dir, flipped) == 0
    assert "PASS: no regressions" in capsys.readouterr().out


def test_perplexity_windows_all_twenty_percent_worse_regress(run_dir, tmp_path, cli, capsys):
    worse = changed_copy(run_dir, tmp_path / "worse", unit(run_dir, "swa", "corpus_perplexity"), perplexity_scaled(1.2))
    change = next(c for c in compare_runs(run_dir, worse).changes if c.key[1:] == ("swa", "corpus_perplexity",
                                                                                  "perplexity"))
    assert change.outcome == "regression" and "+20.00%" in change.change
    assert "excludes 0" in change.note and "paired over 8 items" in change.note
    assert cli("compare", run_dir, worse) == 1
    assert "FAIL" in capsys.readouterr().out


def test_without_items_the_combined_stderr_decides(run_dir, tmp_path):
    worse = changed_copy(run_dir, tmp_path / "worse", unit(run_dir, "swa", "corpus_perplexity"), perplexity_scaled(1.2))
    for path in (worse / "samples").rglob("*.jsonl"):
        path.unlink()
    change = next(c for c in compare_runs(run_dir, worse).changes if c.key[1:] == ("swa", "corpus_perplexity",
                                                                                  "perplexity"))
    before, after = change.baseline, change.current
    expected = difference_interval(before.value, standard_error(before.stderr, before.interval),
                                   after.value, standard_error(after.stderr, after.interval))
    assert change.interval == pytest.approx(expected) and "paired" not in change.note


def test_the_main_table_shows_the_paired_difference_from_the_teacher(run_dir):
    from lizard_bench.report.loading import records_frame
    from lizard_bench.report.runs import read_run
    from lizard_bench.report.tables import main_table
    from lizard_bench.results.intervals import paired_difference

    table = main_table(records_frame([read_run(run_dir)]))
    shown = dict(zip(table.display["variant"], table.display["Δ Corpus perplexity ↓"], strict=True))
    by_variant = {r.variant: r for r in records_of(run_dir, "corpus_perplexity") if r.metric == "perplexity"}
    expected = paired_difference(items_of(run_dir, by_variant["softmax"]), items_of(run_dir, by_variant["swa"]),
                                 seed=0)
    assert expected.n == 8 and expected.difference == pytest.approx(by_variant["swa"].value
                                                                      - by_variant["softmax"].value)
    text = f"{expected.difference:+.3g} [{expected.low:+.3g}, {expected.high:+.3g}]"
    assert shown["softmax"] == "—" and shown["swa"] in (text, text + " *")
    assert shown["swa"].endswith(" *") == expected.excludes_zero


def test_a_partial_rerun_compares_on_the_shared_metrics_only_when_asked(run_dir, tmp_path, cli, capsys):
    partial = changed_copy(run_dir, tmp_path / "partial", unit(run_dir, "swa", "passkey"), lambda rows: rows)
    for path in (partial / "records").rglob("*.json"):
        if path.parent.name != "swa":
            path.unlink()
    assert cli("compare", run_dir, partial) == 1  # the teacher's metrics are missing: a regression by default
    assert cli("compare", run_dir, partial, "--shared-only") == 0
    shared = len([r for r in records_of(run_dir) if r.variant == "swa"])
    left_out = len(records_of(run_dir)) - shared
    assert (f"PASS: no regressions ({shared} ok; {shared} metrics compared; {left_out} in one run only, left out "
            "(--shared-only))") in capsys.readouterr().out
