"""The shipped ReCoRD functions: lm-eval's prompts exactly, and SQuAD-style F1 / exact match."""

from __future__ import annotations

import importlib
import json
import sys
import types

import pytest

from lizard_bench.evaluation import record_task
from tests.evaluation.conftest import FIXTURE_DATA

LM_EVAL_RECORD = "lm_eval.tasks.super_glue.record.util"


def fixture_docs() -> list[dict]:
    return [json.loads(line) for line in (FIXTURE_DATA / "record" / "validation.jsonl").open() if line.strip()]


@pytest.fixture
def lm_eval_record(monkeypatch):
    """lm-eval's own record module, importable for comparison once its removed import is stubbed out."""
    stub = types.ModuleType("transformers.data.metrics.squad_metrics")
    stub.compute_f1 = stub.compute_exact = lambda gold, prediction: 0.0
    monkeypatch.setitem(sys.modules, "transformers.data.metrics", types.ModuleType("transformers.data.metrics"))
    monkeypatch.setitem(sys.modules, "transformers.data.metrics.squad_metrics", stub)
    monkeypatch.delitem(sys.modules, LM_EVAL_RECORD, raising=False)
    module = importlib.import_module(LM_EVAL_RECORD)
    yield module
    sys.modules.pop(LM_EVAL_RECORD, None)


def test_prompts_choices_and_targets_are_lm_evals(lm_eval_record):
    import datasets

    ours = record_task.process_docs(datasets.Dataset.from_list(fixture_docs()))
    theirs = lm_eval_record.process_docs(datasets.Dataset.from_list(fixture_docs()))
    assert list(ours) == list(theirs)
    for doc in ours:
        assert record_task.doc_to_text(doc) == lm_eval_record.doc_to_text(doc)
        assert record_task.doc_to_target(doc) == lm_eval_record.doc_to_target(doc)
        assert record_task.doc_to_choice(doc) == lm_eval_record.doc_to_choice(doc)
    assert ours[0]["entities"] == ["Lina Park", "Riverton"]  # deduplicated and sorted


def test_lm_evals_record_cannot_load_under_transformers_5():
    try:
        importlib.import_module("transformers.data.metrics.squad_metrics")
    except ModuleNotFoundError:
        with pytest.raises(ModuleNotFoundError):
            importlib.import_module(LM_EVAL_RECORD)
    else:
        pytest.skip("this transformers still has squad_metrics: lm-eval's record would load")


@pytest.mark.parametrize(("prediction", "gold", "f1", "em"), [
    ("Lina Park", "Lina Park", 1.0, 1.0),
    ("the Lina Park!", "lina park", 1.0, 1.0),  # case, punctuation and articles do not count
    ("Lina Park", "Park", 2 / 3, 0.0),  # precision 1/2, recall 1
    ("Riverton", "Lina Park", 0.0, 0.0),
    ("The", "a", 1.0, 1.0),  # both normalize to nothing
    ("The", "Park", 0.0, 0.0),
])
def test_token_f1_and_exact_match(prediction, gold, f1, em):
    assert record_task.token_f1(prediction, gold) == pytest.approx(f1)
    assert record_task.exact_match(prediction, gold) == em


def test_results_take_the_most_likely_entity_and_the_best_gold_answer():
    doc = {"entities": ["Ada Moss", "Lake Orn", "Moss"], "answers": ["Ada Moss", "Dr. Ada Moss"]}
    assert record_task.process_results(doc, [(-3.0, False), (-1.0, True), (-2.0, False)]) == {"f1": 0.0, "em": 0.0}
    scores = record_task.process_results(doc, [(-3.0, False), (-5.0, False), (-1.0, True)])
    assert scores == {"f1": pytest.approx(2 / 3), "em": 0.0}
