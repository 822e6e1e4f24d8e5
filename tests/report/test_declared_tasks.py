"""A task the report has never heard of: its records say its label, directions and headline, and every view uses them.

The task below is registered here only; nothing in ``lizard_bench.report`` names it. Records written
before records carried a label and headline (schema version 1) take them from the task registry.
"""

import json
import shutil

import pytest

from lizard_bench.config import load_config
from lizard_bench.report import write_reports
from lizard_bench.report.compare import compare_runs
from lizard_bench.report.loading import records_frame, registered_task
from lizard_bench.report.runs import read_runs
from lizard_bench.report.tables import all_metrics_table, main_table
from lizard_bench.tasks import MetricValue, Task, registry
from lizard_bench.tasks.registry import register_task
from tests.tiny_models import save_tiny_llama


class Spelling(Task):
    """A test-only task: a lower-is-better headline metric and a higher-is-better second one."""

    name = "test_spelling"
    label = "Spelling check"
    suite = "test"
    metrics = {"typos": "lower", "words": "higher"}
    data_source = "none"

    def run(self, handle, context) -> list[MetricValue]:
        return [MetricValue("typos", 3.0), MetricValue("words", 120.0)]


@pytest.fixture
def spelling_registered(monkeypatch):
    registry.discover()
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))  # the registration ends with the test
    register_task(Spelling)
    registered_task.cache_clear()
    yield
    registered_task.cache_clear()


@pytest.fixture
def spelling_run(spelling_registered, tmp_path):
    model = save_tiny_llama(tmp_path / "tiny-llama")
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"id": f"d{i}", "text": "some words " * 20}) + "\n" for i in range(20)))
    from lizard_bench.runner import run_suite

    config = load_config(None, {"models": [str(model)], "corpus": str(corpus), "device": "cpu", "run_id": "spelling",
                                "results_dir": str(tmp_path / "results"), "tasks": ["test_spelling"]})
    return run_suite(config).run_dir


def test_records_carry_what_the_task_declares(spelling_run):
    records = {r.metric: r for r in read_runs([spelling_run])[0].records}
    assert {m: (r.task_label, r.direction, r.headline) for m, r in records.items()} == {
        "typos": ("Spelling check", "lower", True), "words": ("Spelling check", "higher", False)}


def test_a_new_task_appears_in_the_report_with_its_label_and_direction(spelling_run, tmp_path):
    frame = records_frame(read_runs([spelling_run]))
    main = main_table(frame)
    assert "Spelling check typos ↓" in main.display.columns  # the headline metric, marked lower-is-better
    assert not any("words" in str(column) for column in main.display.columns)
    assert {"Spelling check typos ↓", "Spelling check words"} <= set(all_metrics_table(frame).display.columns)
    reports = write_reports([spelling_run], tmp_path / "report")
    assert "Spelling check typos ↓" in reports["report"].read_text()


def test_the_regression_check_follows_the_declared_direction(spelling_run, tmp_path):
    def copy_with(typos: float, words: float):
        run = shutil.copytree(spelling_run, tmp_path / f"typos-{typos}-words-{words}")
        unit = next((run / "records").rglob("test_spelling.json"))
        data = json.loads(unit.read_text())
        for item in data:
            item["value"] = {"typos": typos, "words": words}[item["metric"]]
        unit.write_text(json.dumps(data))
        return run

    assert not compare_runs(spelling_run, copy_with(typos=1.0, words=150.0)).failed  # fewer typos, more words
    assert compare_runs(spelling_run, copy_with(typos=9.0, words=120.0)).failed  # more typos is worse
    assert compare_runs(spelling_run, copy_with(typos=3.0, words=50.0)).failed  # fewer words is worse


def test_records_written_before_the_fields_ask_the_registry(spelling_run):
    unit = next((spelling_run / "records").rglob("test_spelling.json"))
    data = json.loads(unit.read_text())
    for item in data:  # as schema version 1 wrote them
        del item["task_label"], item["headline"]
        item["schema_version"] = 1
    unit.write_text(json.dumps(data))
    ghost = unit.with_name("test_gone.json")  # a task no longer registered: its name, its first metric
    ghost.write_text(json.dumps([{**item, "task": "test_gone"} for item in reversed(data)]))
    frame = records_frame(read_runs([spelling_run]))
    columns = set(main_table(frame).display.columns)
    assert {"Spelling check typos ↓", "test_gone words"} <= columns
