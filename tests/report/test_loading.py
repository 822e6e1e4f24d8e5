"""Reading run directories: clear errors for wrong input, parsed metric names, training logs."""

import json

import pytest

from lizard_bench.report.loading import provenance_frame, records_frame, row_keys, training_frame
from lizard_bench.report.runs import ReportError, read_run, read_runs
from lizard_bench.results import RecordError
from tests.report.fixtures import FIXTURE_MODEL, write_fixture_run


def test_missing_path_is_a_one_line_error(tmp_path):
    with pytest.raises(ReportError, match="no such run directory"):
        read_run(tmp_path / "nope")


def test_results_parent_folder_suggests_a_run(tmp_path):
    write_fixture_run(tmp_path, "r1", variants=("softmax",), with_training=False)
    with pytest.raises(ReportError, match=r"not a run directory .*did you mean one of its runs, e\.g\. .*r1"):
        read_run(tmp_path)


def test_run_without_records_is_rejected(tmp_path):
    (tmp_path / "empty" / "records").mkdir(parents=True)
    with pytest.raises(ReportError, match="holds no records"):
        read_run(tmp_path / "empty")


def test_corrupt_manifest_and_record_are_rejected(tmp_path):
    run = write_fixture_run(tmp_path, "r1", variants=("softmax",), with_training=False)
    (run / "manifest.json").write_text("{not json")
    with pytest.raises(RecordError, match="manifest.json: not valid JSON"):
        read_run(run)
    run = write_fixture_run(tmp_path, "r2", variants=("softmax",), with_training=False)
    unit = next((run / "records").rglob("piqa.json"))
    unit.write_text(unit.read_text()[:30])
    with pytest.raises(RecordError, match="piqa.json"):
        read_run(run)


def test_same_run_id_twice_is_told_apart(tmp_path):
    first = write_fixture_run(tmp_path / "a", "r", variants=("softmax",), with_training=False)
    second = write_fixture_run(tmp_path / "b", "r", variants=("softmax",), with_training=False)
    assert [run.run_id for run in read_runs([first, second])] == ["r", "r#2"]
    with pytest.raises(ReportError, match="no run directory given"):
        read_runs([])


def test_records_frame_parses_measuring_points(fixture_run):
    frame = records_frame(read_runs([fixture_run]))
    decode = frame[(frame["task"] == "decode") & (frame["metric"] == "tokens_per_s@2048")].iloc[0]
    assert (decode["base_metric"], decode["context_length"]) == ("tokens_per_s", 2048)
    probe = frame[frame["metric"] == "exact_match@4096:0.25"].iloc[0]
    assert (probe["base_metric"], probe["context_length"], probe["depth"]) == ("exact_match", 4096, 0.25)
    oom = frame[frame["status"] == "oom"]
    assert len(oom) and oom["value"].isna().all()
    assert row_keys(frame) == ["model", "variant"]


def test_rows_split_by_run_only_when_runs_overlap(fixture_run, tmp_path):
    other = write_fixture_run(tmp_path, "other", variants=("softmax",), with_training=False)
    frame = records_frame(read_runs([fixture_run, other]))
    assert row_keys(frame) == ["model", "variant", "run"]


def test_provenance_per_row(fixture_run):
    frame = records_frame(read_runs([fixture_run]))
    provenance = provenance_frame(frame, ["model", "variant"])
    row = provenance[provenance["variant"] == "lizard"].iloc[0]
    assert row["commit"].startswith("0123456789")
    assert "torch 2.13.0+cpu" in row["versions"]
    assert (row["device"], row["backend"], row["date"]) == ("cpu (fixture)", "torch", "2026-01-02 03:04 UTC")


def test_training_logs_map_back_to_model_names(fixture_run):
    runs = read_runs([fixture_run])
    training = training_frame(runs, records_frame(runs))
    assert set(training["model"]) == {FIXTURE_MODEL}
    assert set(training["variant"]) == {"lizard", "lolcats"}
    assert set(training["stage"]) == {"stage1", "stage2"}
    assert len(training) == 2 * 2 * 120


def test_truncated_last_log_line_is_skipped_but_bad_middle_line_fails(tmp_path):
    run = write_fixture_run(tmp_path, "r", variants=("lizard",))
    log = next((run / "training").rglob("stage1.jsonl"))
    lines = log.read_text().splitlines()
    log.write_text("\n".join([*lines, '{"step": 121, "lo']) + "\n")
    runs = read_runs([run])
    assert len(training_frame(runs, records_frame(runs)).query("stage == 'stage1'")) == 120
    log.write_text("\n".join([lines[0], "garbage", *lines[1:]]) + "\n")
    with pytest.raises(ReportError, match=r"stage1.jsonl:2: not valid JSON"):
        training_frame(runs, records_frame(runs))
    log.write_text(json.dumps({"loss": 1.0}) + "\n" + "\n".join(lines) + "\n")
    with pytest.raises(ReportError, match="'step' and 'loss'"):
        training_frame(runs, records_frame(runs))
