"""Shared fixtures for the training tests: a corpus with learnable structure and small budgets.

Everything runs on the tiny random Llama of ``tests/tiny_models.py`` with its character
tokenizer, so a full two-stage run takes seconds on 2 CPU cores.
"""

from __future__ import annotations

from pathlib import Path

import torch

from lizard_bench.data.corpus import Corpus, Document
from lizard_bench.linearize.pipeline import PreparedVariant, prepare_linearized
from lizard_bench.linearize.training import StageConfig, TrainConfig
from tests.tiny_models import character_tokenizer, tiny_llama

SEQ_LEN = 64
# a window shorter than the training windows, so that both branches (and the sinks' share) are exercised
DEFAULT_OPTIONS = {"window": 16}
PHRASES = ("the quick brown fox jumps over the lazy dog. ", "abcdefg hijklmn opqrstu vwxyz. ",
           "def f(x): return x + 1\n", "one two three four five six seven. ")


def pattern_corpus(documents: int = 24) -> Corpus:
    """Documents that repeat a few phrases: next-token structure a tiny model learns in a few steps."""
    docs = [Document(doc_id=f"doc{i:02d}", text=PHRASES[i % len(PHRASES)] * 12 + PHRASES[(i + 1) % len(PHRASES)] * 6)
            for i in range(documents)]
    return Corpus(name="patterns", documents=docs, heldout_fraction=0.15)


def small_config(stage1_steps: int = 12, stage2_steps: int = 12, **changes) -> TrainConfig:
    settings = dict(
        corpus="patterns", seq_len=SEQ_LEN, seed=0, checkpoint_every=4, eval_windows=2,
        stage1=StageConfig(steps=stage1_steps, lr=3e-2), stage2=StageConfig(steps=stage2_steps, lr=2e-2),
    )
    settings.update(changes)
    return TrainConfig(**settings)


def run_pipeline(
    directory: Path, *, train: TrainConfig | None = None, seed: int = 0, layers: int = 2, options: dict | None = None,
    merge_lora: bool = False, on_step=None, corpus: Corpus | None = None, model: torch.nn.Module | None = None,
) -> PreparedVariant:
    """Linearize and train a tiny teacher (a fresh one unless given); checkpoints under ``directory/ckpt``,
    logs under ``directory/logs``."""
    model = model if model is not None else tiny_llama(seed, num_hidden_layers=layers)
    return prepare_linearized(
        model, character_tokenizer(), model_name=f"tiny-seed{seed}", method="lizard",
        options=DEFAULT_OPTIONS if options is None else options,
        train=train or small_config(), corpus=corpus or pattern_corpus(), checkpoint_dir=directory / "ckpt",
        log_dir=directory / "logs", merge_lora=merge_lora, on_step=on_step, progress=False,
    )


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """What training changes: the linearization parameters and the LoRA adapters, by name."""
    from lizard_bench.linearize import lizard_parameters
    from lizard_bench.linearize.training import lora_parameters

    return {name: p.detach().clone() for name, p in {**lizard_parameters(model), **lora_parameters(model)}.items()}


class Interrupt(RuntimeError):
    """Raised from an ``on_step`` hook to simulate a crash at a chosen step."""


def interrupt_at(stage: str, step: int):
    def hook(info) -> None:
        if info.stage == stage and info.step == step:
            raise Interrupt(f"{stage} step {step}")

    return hook
