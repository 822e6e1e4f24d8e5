"""Every lm-eval task end to end on the fixture data, for the teacher and a linearized variant.

The data are invented (tests/fixtures/task_data/README.md): these tests check the plumbing —
records well formed, values in range, limits respected, data provenance recorded — not scores.
"""

from __future__ import annotations

import json

import pytest

from lizard_bench.config import SuiteConfig, load_config
from lizard_bench.evaluation.catalog import TASK_SPECS
from lizard_bench.results import Record
from lizard_bench.runner import _run_unit, run_suite
from lizard_bench.tasks import TaskContext, get_task
from tests.evaluation.conftest import FIXTURE_DATA, VARIANTS
from tests.tiny_models import save_tiny_llama

PAPER_METRICS = {"piqa": "acc", "arc_easy": "acc", "arc_challenge": "acc_norm", "hellaswag": "acc_norm",
                 "winogrande": "acc", "mmlu": "acc"}
LIMIT = 2


def run_records(handle, task_name: str, **config_changes) -> list[Record]:
    """One (model, variant, task) unit as the runner runs it, records validated by a JSON round trip."""
    settings = {"data_dir": str(FIXTURE_DATA), "task_options": {task_name: {"bootstrap_iters": 10}},
                **config_changes}
    config = SuiteConfig(**settings)
    context = TaskContext(config=config, corpus=lambda: pytest.fail("lm-eval tasks must not read the corpus"))
    records = _run_unit(handle, get_task(task_name), context, base_provenance={})
    return [Record.from_json(record.to_json()) for record in records]


def fixture_rows(task_name: str, split: str) -> int:
    return sum(1 for line in (FIXTURE_DATA / task_name / f"{split}.jsonl").open() if line.strip())


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("spec", TASK_SPECS, ids=lambda spec: spec.name)
def test_every_task_runs_on_local_data(handles, spec, variant):
    records = run_records(handles[variant], spec.name, limit=LIMIT)
    assert [r.status for r in records] == ["ok"] * len(records), records[0].reason
    assert {r.metric for r in records} == set(spec.metrics)
    for record in records:
        assert (record.model, record.variant, record.task, record.direction) == ("tiny-llama", variant, spec.name,
                                                                                "higher")
        low = -1.0 if record.metric == "mcc" else 0.0
        assert low <= record.value <= 1.0
        assert record.stderr is None or record.stderr >= 0
        details = record.details
        assert details["lm_eval_version"] and details["task_version"] is not None
        assert details["num_fewshot"] == spec.num_fewshot
        assert details["data_source"] == "local" and details["data_location"] == str(FIXTURE_DATA / spec.name)
        assert details["limit"] == LIMIT
        assert details["paper_metric"] == (PAPER_METRICS.get(spec.name) == record.metric)
        if spec.is_group:
            assert details["subtasks"] == 2 and not details["complete"]
            assert all(sub["examples"] == LIMIT for sub in details["per_subtask"].values())
            assert details["examples"] == LIMIT * 2
        else:
            assert details["examples"] == LIMIT < details["examples_available"]
    json.dumps([r.details for r in records], allow_nan=False)


def test_without_a_limit_every_fixture_example_is_scored(handles):
    records = run_records(handles["softmax"], "copa")
    assert records[0].details["examples"] == fixture_rows("copa", "validation")
    mmlu = run_records(handles["lizard"], "mmlu")
    assert mmlu[0].details["examples"] == fixture_rows("mmlu", "test")
    # 5-shot prompts exceed the tiny model's 512 positions: truncated from the left, and said so
    assert mmlu[0].details["truncated_requests"]["loglikelihood"] > 0


def test_shots_are_a_task_option_and_their_split_must_be_present(handles):
    # the cola fixture has a train split (lm-eval's few-shot source for GLUE); arc_easy's has none
    records = run_records(handles["softmax"], "cola", limit=1, task_options={"cola": {"num_fewshot": 1}})
    assert (records[0].status, records[0].details["num_fewshot"]) == ("ok", 1)
    records = run_records(handles["softmax"], "arc_easy", limit=1, task_options={"arc_easy": {"num_fewshot": 1}})
    assert records[0].status == "unavailable" and "train.jsonl" in records[0].reason


@pytest.mark.parametrize("data_dir", [None, "empty"])
def test_missing_data_offline_gives_unavailable_records(handles, tmp_path, data_dir):
    records = run_records(handles["softmax"], "cb", data_dir=str(tmp_path) if data_dir else None)
    assert [(r.metric, r.status, r.value) for r in records] == [("acc", "unavailable", None),
                                                              ("f1", "unavailable", None)]
    reason = records[0].reason
    assert "offline" in reason and "export-data" in reason and "\n" not in reason
    if data_dir:
        assert str(tmp_path / "cb") in reason


def test_the_runner_runs_lm_eval_tasks_from_a_suite(tmp_path):
    model_dir = save_tiny_llama(tmp_path / "model")
    config = load_config(None, {
        "models": [str(model_dir)], "tasks": ["cola", "mmlu", "boolq"], "data_dir": str(FIXTURE_DATA),
        "limit": 1, "results_dir": str(tmp_path / "results"), "run_id": "lm-eval", "device": "cpu",
        "task_options": {"cola": {"bootstrap_iters": 5}},
    })
    summary = run_suite(config)
    assert {(r.task, r.metric, r.status) for r in summary.records} == {
        ("cola", "mcc", "ok"), ("mmlu", "acc", "ok"), ("boolq", "acc", "ok")}
    assert all(r.provenance["kernel_backend"] == "torch" for r in summary.records)
