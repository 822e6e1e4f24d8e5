"""Any lm-eval task runs, not only the curated catalog: a user's own YAML through --include-path, with samples kept."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from lm_eval import simple_evaluate
from lm_eval.tasks import TaskManager

from lizard_bench.cli import main
from lizard_bench.config import load_config
from lizard_bench.evaluation.lm import LizardLM
from lizard_bench.models.kernel_attention import use_kernel_attention
from lizard_bench.preflight import expand_task_names, selected_tasks
from lizard_bench.results import RunStore
from tests.tiny_models import character_tokenizer, save_tiny_llama, tiny_llama

TASK = "my_fixture_choice"


@pytest.fixture(scope="module")
def include_path(tmp_path_factory) -> Path:
    """FIXTURE: an invented two-way choice task in lm-eval's YAML format, with 10 made-up rows."""
    folder = tmp_path_factory.mktemp("my-tasks")
    rows = [{"context": f"Item {i} is a", "choices": [" cat", " dog"], "label": i % 2} for i in range(10)]
    (folder / "rows.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    (folder / "task.yaml").write_text(
        f"task: {TASK}\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {folder / 'rows.jsonl'}\n"
        "test_split: test\noutput_type: multiple_choice\ndoc_to_text: '{{context}}'\ndoc_to_choice: '{{choices}}'\n"
        "doc_to_target: label\nmetric_list:\n  - metric: acc\n    aggregation: mean\n    higher_is_better: true\n"
        "metadata:\n  version: 1.0\n"
    )
    return folder


def test_a_task_from_a_local_yaml_runs_and_scores_as_lm_eval_does(include_path, tmp_path, capsys, monkeypatch):
    model_dir = save_tiny_llama(tmp_path / "model")
    monkeypatch.chdir(include_path)  # `--include-path .`, recorded as the folder it names
    status = main(["run", "--model", str(model_dir), "--variant", "softmax", "--task", TASK,
                   "--include-path", ".", "--log-samples", "--batch-size", "3",
                   "--results-dir", str(tmp_path / "results"), "--run-id", "mine", "--device", "cpu"])
    assert status == 0, capsys.readouterr().err[-2000:]
    store = RunStore(tmp_path / "results" / "mine")
    records = store.read_records()
    accuracy = next(r for r in records if r.metric == "acc")
    assert accuracy.status == "ok" and accuracy.direction == "higher" and accuracy.details["examples"] == 10
    assert accuracy.details["include_path"] == str(include_path.resolve())
    assert store.read_manifest()["config"]["lm_eval_include_path"] == str(include_path.resolve())

    model = tiny_llama()
    use_kernel_attention(model, "torch")
    reference = simple_evaluate(model=LizardLM(model, character_tokenizer(), "cpu", progress=False), tasks=[TASK],
                                task_manager=TaskManager(include_path=str(include_path)), bootstrap_iters=0)
    assert accuracy.value == pytest.approx(reference["results"][TASK]["acc,none"], abs=1e-9)

    samples = Path(accuracy.details["samples_file"])
    lines = [json.loads(line) for line in samples.read_text().splitlines()]
    assert samples.parent.parent.parent.name == "samples" and len(lines) == 10
    assert {line["task"] for line in lines} == {TASK} and all("filtered_resps" in line for line in lines)


def test_comma_lists_and_suite_names_expand():
    assert expand_task_names(["copa,boolq", "copa"]) == ["copa", "boolq"]
    superglue = expand_task_names(["superglue"])
    assert "copa" in superglue and "boolq" in superglue and "piqa" not in superglue
    config = load_config(None, {"tasks": ["glue,passkey"]})
    names = [task.name for task in selected_tasks(config)]
    assert "cola" in names and names[-1] == "passkey"


def test_run_wide_lm_eval_settings_reach_every_lm_eval_task():
    config = load_config(None, {"tasks": ["copa", "mmlu"], "lm_eval.num_fewshot": 2, "lm_eval.batch_size": 8})
    for task in selected_tasks(config):
        options = task.suite_options(config)
        assert options.num_fewshot == 2 and options.batch_size == 8
