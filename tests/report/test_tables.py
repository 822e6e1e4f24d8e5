"""Tables: paper-style main table with averages and recovery, failures shown as such, three file formats."""

import math

import pandas as pd
import pytest

from lizard_bench.report.loading import records_frame, training_summaries
from lizard_bench.report.runs import read_runs
from lizard_bench.report.tables import (
    all_metrics_table,
    efficiency_table,
    linearization_table,
    long_context_table,
    main_table,
    to_latex,
    to_markdown,
    write_table,
)
from tests.report.fixtures import ACCURACY, FIXTURE_MODEL


@pytest.fixture(scope="module")
def frame(fixture_run):
    return records_frame(read_runs([fixture_run]))


def row(table, variant):
    raw = table.raw.set_index("variant").loc[variant]
    text = table.display.set_index("variant").loc[variant]
    return raw, text


def test_main_table_rows_columns_and_paper_metrics(frame):
    table = main_table(frame)
    assert list(table.raw["variant"]) == ["softmax", "lizard", "lolcats"]  # teacher first
    columns = list(table.display.columns)
    assert columns[:8] == ["model", "variant", "PIQA acc (%)", "ARC-e acc (%)", "ARC-c acc_norm (%)",
                           "HellaSwag acc_norm (%)", "WinoGrande acc (%)", "MMLU acc (%)"]
    assert "Corpus perplexity ↓" in columns and "BoolQ acc (%)" in columns
    raw, text = row(table, "lizard")
    assert raw["PIQA acc (%)"] == pytest.approx(74.8)
    assert text["ARC-c acc_norm (%)"].startswith("36.5 ± "), "the value with its stderr"


def test_failed_records_show_their_status_and_stay_out_of_averages(frame):
    table = main_table(frame)
    raw, text = row(table, "lolcats")
    assert raw["MMLU acc (%)"] == "error" and text["MMLU acc (%)"] == "error"
    assert text["Needle exact_match (%)"] == "unavailable"
    five = [100 * ACCURACY["lolcats"][t] for t in ("piqa", "arc_easy", "arc_challenge", "hellaswag", "winogrande")]
    assert raw["avg 5 tasks (%)"] == pytest.approx(sum(five) / 5)
    assert raw["avg 6 tasks (%)"] == pytest.approx(sum(five) / 5)  # MMLU failed: excluded, not counted as 0
    assert text["avg 6 tasks (%)"].endswith("(5/6)")


def test_recovery_against_the_teacher(frame):
    table = main_table(frame)
    teacher, _ = row(table, "softmax")
    lizard, lizard_text = row(table, "lizard")
    assert lizard["recovery 6 tasks (% of teacher)"] == pytest.approx(
        100 * lizard["avg 6 tasks (%)"] / teacher["avg 6 tasks (%)"])
    assert lizard_text["recovery 6 tasks (% of teacher)"] == "99.9"
    _, teacher_text = row(table, "softmax")
    assert teacher_text["recovery 5 tasks (% of teacher)"] == "—"
    lolcats, lolcats_text = row(table, "lolcats")
    teacher_five = teacher["avg 5 tasks (%)"]
    assert lolcats["recovery 6 tasks (% of teacher)"] == pytest.approx(100 * lolcats["avg 5 tasks (%)"] / teacher_five)
    assert lolcats_text["recovery 6 tasks (% of teacher)"].endswith("(5/6)")


def test_perplexity_only_run_has_no_paper_averages(frame):
    only_ppl = frame[frame["task"] == "corpus_perplexity"]
    table = main_table(only_ppl)
    assert list(table.display.columns) == ["model", "variant", "Corpus perplexity ↓", "Δ Corpus perplexity ↓"]
    assert main_table(frame[frame["task"] == "prefill"]) is None


def test_efficiency_table_per_context_length(frame):
    table = efficiency_table(frame)
    assert table.keys == ["model", "variant", "context length"]
    teacher = table.display[table.display["variant"] == "softmax"].set_index("context length")
    assert teacher.loc[8192, "Prefill tokens/s"] == "oom"
    assert teacher.loc[8192, "prefill peak memory (MiB)"] == "oom"
    assert teacher.loc[8192, "cache (MiB)"] == "—"  # not measured at all: a dash, not a status
    assert teacher.loc[2048, "cache (MiB)"] == "128.0"
    assert table.raw.loc[table.raw["variant"] == "lizard", "Decode tokens/s"].tolist() == [48.0] * 5
    assert any("Memory measured by" in note for note in table.notes)


def test_long_context_and_all_metrics_tables(frame):
    table = long_context_table(frame)
    teacher = table.display[(table.display["variant"] == "softmax") & (table.display["task"] == "passkey")]
    assert teacher.set_index("context length").loc[8192, "depth 1 (%)"] == "timeout"
    everything = all_metrics_table(frame)
    lizard = everything.display.set_index("variant").loc["lizard"]
    assert lizard["PIQA acc (%)"] == "74.8 ± 1.1"
    assert lizard["ARC-c acc (%)"] == "35.3 ± 1.1"


def test_three_formats_written(frame, tmp_path):
    table = main_table(frame)
    paths = write_table(table, tmp_path)
    assert set(paths) == {"md", "csv", "tex"}
    csv = pd.read_csv(paths["csv"])
    assert list(csv.columns) == list(table.raw.columns)
    lolcats = csv.set_index("variant").loc["lolcats"]
    assert lolcats["MMLU acc (%)"] == "error"
    assert math.isclose(float(lolcats["PIQA acc (%)"]), 74.6)
    markdown = paths["md"].read_text()
    assert markdown.startswith("## Results\n\n| model ")
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in markdown.splitlines()
            if line.startswith("|")]
    assert rows[0][:3] == ["model", "variant", "PIQA acc (%)"]
    assert rows[1][0].startswith(":-") and rows[1][2].endswith("-:"), "names left, numbers right"
    assert [FIXTURE_MODEL, "lolcats", "74.6 ± 1.1"] in [row[:3] for row in rows]
    latex = paths["tex"].read_text()
    assert "\\toprule" in latex and "\\bottomrule" in latex
    assert "acc\\_norm (\\%)" in latex and "$\\downarrow$" in latex
    assert "↓" not in latex and "—" not in latex


def test_markdown_and_latex_escape_cell_content(frame):
    table = main_table(frame)
    table.display.loc[0, "model"] = "a|b_c%"
    assert "a\\|b_c%" in to_markdown(table)
    assert "a|b\\_c\\%" in to_latex(table)


def test_linearization_table_joins_training_summaries_with_perplexity_and_passkey_splits(fixture_run, frame):
    table = linearization_table(frame, training_summaries(read_runs([fixture_run]), frame))
    assert list(table.raw["variant"]) == ["softmax", "lizard", "lolcats"]
    raw, text = row(table, "lolcats")
    assert (raw["stage-1 MSE start"], raw["stage-2 LM loss end"]) == (0.8, pytest.approx(2.1 * 1.15))
    assert text["stage-1 MSE"] == "0.8 → 0.0046" and text["stage-2 LM loss"] == "3.2 → 2.42"
    assert raw["perplexity"] == 13.6
    assert raw["passkey beyond @2048 (%)"] == 25.0 and text["passkey beyond @2048 (%)"] == "25.0 (4)"
    assert raw["passkey within @8192 (%)"] == 100.0
    teacher_raw, teacher_text = row(table, "softmax")  # the teacher trains nothing
    assert teacher_text["stage-1 MSE"] == "—" and teacher_raw["perplexity"] == 11.5


def test_linearization_table_needs_a_trained_variant(frame):
    assert linearization_table(frame, pd.DataFrame(columns=["model", "variant"])) is None


def test_points_measured_on_a_busy_machine_are_marked_with_a_note(frame):
    assert not any("busy" in note for note in efficiency_table(frame).notes), "the fixture's points are quiet"
    busy = frame.copy()
    chosen = (busy["variant"] == "lizard") & (busy["task"] == "decode") & (busy["context_length"] == 512)
    busy.loc[chosen, "details"] = [{**d, "noisy": True} for d in busy.loc[chosen, "details"]]
    table = efficiency_table(busy)
    lizard = table.display[table.display["variant"] == "lizard"].set_index("context length")
    assert lizard.loc[512, "Decode tokens/s"].endswith(" *")
    assert not lizard.loc[1024, "Decode tokens/s"].endswith("*")
    assert any("busy" in note and note.startswith("*") for note in table.notes)


def test_a_recorded_95_percent_interval_is_shown_instead_of_the_stderr(frame):
    with_interval = frame.copy()
    chosen = (with_interval["variant"] == "lizard") & (with_interval["task"] == "passkey") & (
        with_interval["metric"].isin(["exact_match", "exact_match@2048:0.5"]))
    with_interval.loc[chosen, "stderr"] = 0.1
    with_interval.loc[chosen, "interval"] = pd.Series([(0.0, 0.658)] * int(chosen.sum()),
                                                      index=with_interval.index[chosen], dtype=object)
    everything = all_metrics_table(with_interval).display.set_index("variant").loc["lizard"]
    cell = everything["Passkey exact_match (%)"]
    assert cell.endswith(" [0.0, 65.8]") and "±" not in cell
    grid = long_context_table(with_interval).display
    lizard = grid[(grid["variant"] == "lizard") & (grid["task"] == "passkey")].set_index("context length")
    assert lizard.loc[2048, "depth 0.5 (%)"].endswith(" [0.0, 65.8]")
    assert "[" not in lizard.loc[2048, "depth 0 (%)"]


def test_the_main_table_shows_a_sweeps_headline_at_the_longest_length_the_teacher_measured():
    """length_extrapolation has only metrics at a point: its context_gain at the longest teacher length is shown."""
    from lizard_bench.report.tables import main_table

    def record(variant, metric, length, value, status="ok", ci=None):
        return {"run": "fixture", "model": "m", "variant": variant, "task": "length_extrapolation",
                "task_label": "Length extrapolation", "metric": metric, "base_metric": metric.split("@")[0],
                "headline": metric.startswith("context_gain"), "context_length": length, "depth": float("nan"),
                "value": value if status == "ok" else None, "stderr": 0.01, "status": status, "reason": None,
                "direction": "lower", "details": {}, "interval": ci, "n": 6}

    frame = pd.DataFrame([  # fixtures: three lengths, the longest not measured for the teacher
        record("softmax", "context_gain@2048", 2048, 0.88, ci=(0.85, 0.91)),
        record("softmax", "context_gain@4096", 4096, None, status="unavailable"),
        record("softmax", "perplexity@512", 512, 12.5),
        record("lizard", "context_gain@2048", 2048, 1.01, ci=(0.99, 1.03)),
        record("lizard", "context_gain@4096", 4096, 1.05, ci=(1.02, 1.08)),
    ])
    frame["context_length"] = frame["context_length"].astype("Int64")
    table = main_table(frame)
    column = "Length extrapolation context_gain@2048 ↓"
    assert column in table.display.columns
    shown = dict(zip(table.display["variant"], table.display[column], strict=True))
    assert shown == {"softmax": "0.88 [0.85, 0.91]", "lizard": "1.01 [0.99, 1.03]"}
    # no per-item outcomes here: Δ is unpaired, 0.13 ± 1.96·√(0.01² + 0.01²) = ± 0.0277, and excludes 0
    delta = dict(zip(table.display["variant"], table.display[f"Δ {column}"], strict=True))
    assert delta == {"softmax": "—", "lizard": "+0.13 [+0.102, +0.158] † *"}
