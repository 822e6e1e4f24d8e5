"""The task table agrees with lm-eval's own task files, and the tasks are registered as plugins."""

from __future__ import annotations

import pytest

from lizard_bench.evaluation.catalog import TASK_SPECS, expand_task_names, get_spec, lm_eval_tasks_dir
from lizard_bench.evaluation.definitions import read_task_yaml, task_definitions
from lizard_bench.tasks import all_tasks

GLUE = ["cola", "sst2", "mrpc", "qqp", "mnli", "mnli_mismatch", "qnli", "rte", "wnli"]
SUPERGLUE = ["boolq", "cb", "copa", "multirc", "record", "sglue_rte", "wic", "wsc"]
PAPER = ["piqa", "arc_easy", "arc_challenge", "hellaswag", "winogrande", "mmlu"]


def test_the_suites_hold_exactly_the_requested_tasks():
    assert [s.name for s in expand_task_names(["glue"])] == GLUE
    assert [s.name for s in expand_task_names(["superglue"])] == SUPERGLUE
    assert [s.name for s in expand_task_names(["paper"])] == PAPER
    assert [s.name for s in expand_task_names(["cola,mmlu", "cola"])] == ["cola", "mmlu"]
    with pytest.raises(KeyError, match="unknown lm-eval task 'colaa'"):
        expand_task_names(["colaa"])


@pytest.mark.parametrize("spec", TASK_SPECS, ids=lambda spec: spec.name)
def test_declared_metrics_and_names_match_lm_evals_definition(spec):
    definitions = task_definitions(spec)
    assert definitions, f"no lm-eval definition found for {spec.name}"
    config = read_task_yaml(definitions[0].yaml_path)
    assert tuple(m["metric"] for m in config["metric_list"]) == spec.metrics
    if not spec.is_group:
        assert definitions[0].task == spec.name


def test_mmlu_is_all_57_subjects_five_shot_from_dev():
    definitions = task_definitions(get_spec("mmlu"))
    assert len(definitions) == 57
    assert {d.dataset_path for d in definitions} == {"cais/mmlu"}
    assert definitions[0].required_splits(5) == ["test", "dev"]
    assert definitions[0].required_splits(0) == ["test"]


def test_shipped_record_keeps_lm_evals_definition_apart_from_the_functions():
    ours = read_task_yaml(get_spec("record").definition_path())
    theirs = read_task_yaml(lm_eval_tasks_dir() / "super_glue" / "record" / "default.yaml")
    for key in ("task", "dataset_path", "dataset_name", "output_type", "training_split", "validation_split"):
        assert ours[key] == theirs[key], key
    assert [m["metric"] for m in ours["metric_list"]] == [m["metric"] for m in theirs["metric_list"]]
    assert ours["metadata"]["version"] == theirs["metadata"]["version"]
    functions = ("doc_to_text", "doc_to_target", "doc_to_choice", "process_docs", "process_results")
    assert sorted(k for k, v in theirs.items() if str(v).startswith("!function")) == sorted(functions)
    assert all(ours[k].startswith("!function lizard_bench.evaluation.record_task.") for k in functions)


def test_every_spec_is_a_registered_task_with_higher_is_better_metrics():
    registered = all_tasks()
    for spec in TASK_SPECS:
        cls = registered[spec.name]
        assert cls.suite == spec.suite
        assert cls.metrics == {metric: "higher" for metric in spec.metrics}
        assert cls.Options().num_fewshot == spec.num_fewshot
    assert {s.name: s.paper_metric for s in TASK_SPECS if s.paper_metric} == {
        "piqa": "acc", "arc_easy": "acc", "arc_challenge": "acc_norm", "hellaswag": "acc_norm",
        "winogrande": "acc", "mmlu": "acc"}
