"""Fixtures for the probe tests: a round-tripping character tokenizer, handles, contexts and stub models."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import torch
from tokenizers import decoders

from lizard_bench.config import SuiteConfig
from lizard_bench.data.corpus import Corpus, Document
from lizard_bench.long_context.tokens import encode
from lizard_bench.models.loading import LoadedModel
from lizard_bench.tasks import ModelHandle, TaskContext
from tests.tiny_models import character_tokenizer


def fused_character_tokenizer():
    """The shared character tokenizer, decoding without spaces between characters.

    Its default decoder joins tokens with spaces ('1 2 3'), which no real tokenizer does and
    which would turn every digit answer into several numbers.
    """
    tokenizer = character_tokenizer()
    tokenizer.backend_tokenizer.decoder = decoders.Fuse()
    return tokenizer


def fixture_corpus() -> Corpus:
    """Sixty small documents of numbered lines: a few thousand characters of held-out text."""
    documents = []
    for d in range(60):
        lines = [f"Line {i} of document {d}: the quick brown fox jumps over the lazy dog.\n" for i in range(12)]
        documents.append(Document(f"doc{d:02d}", "".join(lines)))
    return Corpus("fixture", documents)


def make_handle(model: torch.nn.Module, tokenizer=None) -> ModelHandle:
    loaded = LoadedModel(model=model, tokenizer=tokenizer or fused_character_tokenizer(), source=None,
                         device=torch.device("cpu"))
    return ModelHandle(model_name="tiny", variant="test", loaded=loaded, kernel_backend="torch")


def make_context(task_options: dict | None = None, *, seed: int = 0, limit: int | None = None,
                 run_dir: Path | None = None) -> TaskContext:
    config = SuiteConfig(seed=seed, limit=limit, task_options=task_options or {})
    corpus = fixture_corpus()
    return TaskContext(config=config, corpus=lambda: corpus, run_dir=run_dir)


class AnsweringModel(torch.nn.Module):
    """A stand-in whose ``generate`` appends ``answer_of(prompt text)``: scores what it is told to know."""

    def __init__(self, tokenizer, answer_of: Callable[[str], str]) -> None:
        super().__init__()
        self.tokenizer = tokenizer
        self.answer_of = answer_of
        self.prompt_lengths: list[int] = []

    def generate(self, input_ids: torch.Tensor, *, max_new_tokens: int, **kwargs) -> torch.Tensor:
        assert input_ids.shape[0] == 1, "probes must generate one prompt at a time"
        self.prompt_lengths.append(input_ids.shape[1])
        text = self.tokenizer.decode(input_ids[0].tolist())
        new = encode(self.tokenizer, " " + self.answer_of(text))[:max_new_tokens]
        return torch.cat([input_ids, torch.tensor([new], dtype=input_ids.dtype)], dim=1)


def passkey_in(prompt: str) -> str:
    return re.search(r"The pass key is (\d+)\.", prompt).group(1)


def needle_in(prompt: str) -> str:
    city = re.search(r"What is the special magic number for (\w+) in", prompt).group(1)
    return re.search(rf"The special magic number for {city} is (\d+)\.", prompt).group(1)


def value_in(prompt: str) -> str:
    key = re.search(r"What is the value of ([a-z]+ [a-z]+)\?", prompt).group(1)
    return re.search(rf"^{key}: (\d+)$", prompt, flags=re.MULTILINE).group(1)
