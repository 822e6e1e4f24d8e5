"""ReCoRD's prompt and scoring functions, for the task definition shipped in ``shipped_yaml/record``.

lm-eval 0.4.13's ``super_glue/record`` module imports ``transformers.data.metrics.squad_metrics``
for SQuAD-style token F1 and exact match; transformers 5 removed that module, so the task
cannot even be loaded. The shipped YAML keeps lm-eval's definition (same prompt, choices,
document processing, F1/EM averaged per example) and points its functions here; a test
checks that the prompts are identical to lm-eval's.
"""

from __future__ import annotations

import collections
import re
import string
from typing import Any

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = frozenset(string.punctuation)


# ---------------------------------------------------------------- prompt (as lm-eval's record v2.0)
def doc_to_text(doc: dict[str, Any]) -> str:
    """The passage, then its '@highlight' lines as a bullet list."""
    passage, *highlights = doc["passage"].strip().split("\n@highlight\n")
    return passage + "\n\n" + "".join(f"  - {highlight}.\n" for highlight in highlights)


def format_answer(query: str, entity: str) -> str:
    return f"  - {query}".replace("@placeholder", entity)


def doc_to_target(doc: dict[str, Any]) -> str:
    """The query completed with the first gold entity (only one target is scored, as in lm-eval)."""
    return format_answer(doc["query"], doc["answers"][0])


def doc_to_choice(doc: dict[str, Any]) -> list[str]:
    return [format_answer(doc["query"], entity) for entity in doc["entities"]]


def process_docs(dataset: Any) -> Any:
    """Deduplicate and sort entities and answers, so choice order does not depend on the export."""

    def _process(doc: dict[str, Any]) -> dict[str, Any]:
        return {
            "passage": doc["passage"],
            "query": doc["query"],
            "entities": sorted(set(doc["entities"])),
            "answers": sorted(set(doc["answers"])),
        }

    return dataset.map(_process)


def process_results(doc: dict[str, Any], results: list[tuple[float, bool]]) -> dict[str, float]:
    """The most likely entity, scored by its best F1 and exact match against any gold answer."""
    scores = [result[0] for result in results]
    prediction = doc["entities"][max(range(len(scores)), key=scores.__getitem__)]
    return {
        "f1": max(token_f1(prediction, gold) for gold in doc["answers"]),
        "em": max(exact_match(prediction, gold) for gold in doc["answers"]),
    }


# ---------------------------------------------------------------- SQuAD-style answer comparison
def normalize_answer(text: str) -> str:
    """Lowercase, drop punctuation and the articles a/an/the, collapse whitespace (the SQuAD convention)."""
    text = "".join(char for char in text.lower() if char not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, gold: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(gold))


def token_f1(prediction: str, gold: str) -> float:
    """Harmonic mean of token precision and recall after normalization; two empty answers match."""
    predicted, expected = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if not predicted or not expected:
        return float(predicted == expected)
    overlap = sum((collections.Counter(predicted) & collections.Counter(expected)).values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(predicted), overlap / len(expected)
    return 2 * precision * recall / (precision + recall)
