"""Choosing the data source, and the generated configs that point lm-eval's definitions at it."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml

from lizard_bench.config import SuiteConfig
from lizard_bench.evaluation import data_sources
from lizard_bench.evaluation.catalog import get_spec
from lizard_bench.evaluation.data_sources import DataUnavailable, hub_offline_reason, plan_data
from lizard_bench.evaluation.definitions import task_definitions
from lizard_bench.evaluation.task_configs import write_task_configs
from lizard_bench.tasks import get_task
from tests.evaluation.conftest import FIXTURE_DATA


@pytest.fixture
def online(monkeypatch):
    """A machine where the hub answers (nothing is downloaded by these tests)."""
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("HF_DATASETS_OFFLINE")
    monkeypatch.setattr(data_sources, "_reachable", lambda endpoint: True)


def load_yaml(path):
    return yaml.safe_load(path.read_text())


def test_complete_local_data_is_used_and_described():
    plan = plan_data(get_spec("cola"), str(FIXTURE_DATA), num_fewshot=0)
    assert plan.kind == "local" and plan.location == str(FIXTURE_DATA / "cola")
    assert set(plan.files) == {"validation", "train"}
    assert plan.details()["data_files"]["validation"] == str(FIXTURE_DATA / "cola" / "validation.jsonl")


def test_offline_without_data_is_unavailable_with_a_one_line_reason(tmp_path):
    with pytest.raises(DataUnavailable) as missing:
        plan_data(get_spec("wic"), None, num_fewshot=0)
    assert "offline (HF_DATASETS_OFFLINE=1)" in str(missing.value) and "export-data" in str(missing.value)
    assert get_task("wic").data_status(SuiteConfig()) == str(missing.value)
    assert get_task("wic").data_status(SuiteConfig(data_dir=str(FIXTURE_DATA))) is None
    (tmp_path / "mmlu").mkdir()
    shutil.copy(FIXTURE_DATA / "mmlu" / "test.jsonl", tmp_path / "mmlu")
    reason = get_task("mmlu").data_status(SuiteConfig(data_dir=str(tmp_path)))
    assert f"{tmp_path / 'mmlu'} lacks dev.jsonl" in reason and "\n" not in reason
    # zero-shot MMLU does not need the dev split
    assert get_task("mmlu").data_status(SuiteConfig(data_dir=str(tmp_path),
                                                    task_options={"mmlu": {"num_fewshot": 0}})) is None


def test_online_falls_back_to_the_hub_and_says_why_local_data_was_not_used(online, tmp_path):
    assert hub_offline_reason() is None
    plan = plan_data(get_spec("mnli"), str(tmp_path), num_fewshot=0)
    assert (plan.kind, plan.location) == ("hub", "nyu-mll/glue:mnli")
    assert "lacks validation_matched.jsonl" in plan.note


def test_an_unreachable_hub_counts_as_offline(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("HF_DATASETS_OFFLINE")
    monkeypatch.setattr(data_sources, "_reachable", lambda endpoint: False)
    assert hub_offline_reason() == "huggingface.co unreachable"


def test_local_config_includes_lm_evals_file_and_overrides_only_the_data(tmp_path):
    spec = get_spec("sst2")
    plan = plan_data(spec, str(FIXTURE_DATA), num_fewshot=0)
    generated = write_task_configs(spec, plan, 0, tmp_path)
    config = load_yaml(tmp_path / "sst2.yaml")
    assert config["include"] == str(task_definitions(spec)[0].yaml_path)
    assert config["dataset_path"] == "json" and config["dataset_name"] is None
    assert config["dataset_kwargs"]["data_files"] == {"validation": str(FIXTURE_DATA / "sst2" / "validation.jsonl")}
    assert config["training_split"] is None  # not exported, not needed zero-shot
    assert "doc_to_text" not in config and "metric_list" not in config  # prompts and metrics stay lm-eval's
    assert generated.load_name == "sst2"
    # a split that is present stays as lm-eval names it
    write_task_configs(get_spec("cola"), plan_data(get_spec("cola"), str(FIXTURE_DATA), 0), 0, tmp_path)
    assert "training_split" not in load_yaml(tmp_path / "cola.yaml")


def test_hub_config_changes_nothing_but_the_shots(online, tmp_path):
    spec = get_spec("piqa")
    write_task_configs(spec, plan_data(spec, None, 0), 0, tmp_path)
    assert load_yaml(tmp_path / "piqa.yaml") == {"include": str(task_definitions(spec)[0].yaml_path),
                                                  "task": "piqa", "num_fewshot": 0}
    mmlu = get_spec("mmlu")
    generated = write_task_configs(mmlu, plan_data(mmlu, None, 5), 5, tmp_path / "mmlu")
    assert len(generated.subtasks) == 57
    # lm-eval indexes what was generated (loading would download, so it stops here)
    from lm_eval.tasks import TaskManager

    indexed = TaskManager(include_path=str(tmp_path), include_defaults=False).all_tasks
    assert {"piqa", "mmlu", *generated.subtasks} <= set(indexed)


def test_local_mmlu_is_split_by_subject_into_a_size_weighted_group(tmp_path):
    spec = get_spec("mmlu")
    generated = write_task_configs(spec, plan_data(spec, str(FIXTURE_DATA), 5), 5, tmp_path)
    assert generated.subtasks == ["mmlu_astronomy", "mmlu_marketing"]
    group = load_yaml(tmp_path / "_mmlu_group.yaml")
    assert group["task"] == generated.subtasks
    assert group["aggregate_metric_list"] == [{"metric": "acc", "weight_by_size": True}]
    astronomy = load_yaml(tmp_path / "mmlu_astronomy.yaml")
    assert astronomy["num_fewshot"] == 5 and astronomy["include"].endswith("mmlu/default/mmlu_astronomy.yaml")
    rows = [json.loads(line) for line in open(astronomy["dataset_kwargs"]["data_files"]["dev"])]
    assert len(rows) == 5 and {row["subject"] for row in rows} == {"astronomy"}


def test_mmlu_subjects_without_enough_shots_or_unknown_to_lm_eval_are_errors(tmp_path):
    data = tmp_path / "data" / "mmlu"
    data.mkdir(parents=True)
    shutil.copy(FIXTURE_DATA / "mmlu" / "test.jsonl", data)
    dev_rows = (FIXTURE_DATA / "mmlu" / "dev.jsonl").read_text().splitlines()
    (data / "dev.jsonl").write_text("\n".join(dev_rows[1:]) + "\n")  # astronomy keeps 4 of 5
    spec = get_spec("mmlu")
    with pytest.raises(ValueError, match="'astronomy' has 4 rows in dev.jsonl; 5-shot prompts need 5"):
        write_task_configs(spec, plan_data(spec, str(tmp_path / "data"), 5), 5, tmp_path / "out1")
    row = {"question": "?", "subject": "alchemy", "choices": ["a", "b", "c", "d"], "answer": 0}
    (data / "test.jsonl").write_text(json.dumps(row) + "\n")
    (data / "dev.jsonl").write_text(json.dumps(row) + "\n")
    with pytest.raises(ValueError, match="subjects unknown to lm-eval's mmlu: alchemy"):
        write_task_configs(spec, plan_data(spec, str(tmp_path / "data"), 1), 1, tmp_path / "out2")
