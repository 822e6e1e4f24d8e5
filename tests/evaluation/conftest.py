"""Shared fixtures: tiny random models as both variants, the fixture task data, and an offline machine."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lizard_bench.linearize import linearize
from lizard_bench.models.kernel_attention import use_kernel_attention
from lizard_bench.models.loading import LoadedModel
from lizard_bench.models.locate import ModelSource
from lizard_bench.tasks import ModelHandle
from tests.tiny_models import character_tokenizer, tiny_llama

FIXTURE_DATA = Path(__file__).resolve().parents[1] / "fixtures" / "task_data"
VARIANTS = ("softmax", "lizard")


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """These tests never reach the hub, even on a connected machine."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")


def tiny_variant(variant: str, seed: int = 0) -> torch.nn.Module:
    """The teacher through the shared kernels, or the same weights linearized with Lizard (untrained)."""
    model = tiny_llama(seed=seed)
    if variant == "softmax":
        use_kernel_attention(model, "torch")
    else:
        linearize(model, "lizard", kernel_backend="torch")
    return model.eval()


def make_handle(variant: str) -> ModelHandle:
    source = ModelSource(name="tiny-llama", kind="directory", location="<tests.tiny_models>")
    loaded = LoadedModel(tiny_variant(variant), character_tokenizer(), source, torch.device("cpu"))
    return ModelHandle(model_name="tiny-llama", variant=variant, loaded=loaded, kernel_backend="torch")


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models run many small ops: one thread is faster, and immune to a busy shared machine.

    (With two OpenMP threads on an oversubscribed 2-core box a 100-token forward took 0.5 s instead of 5 ms.)
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def handles() -> dict[str, ModelHandle]:
    return {variant: make_handle(variant) for variant in VARIANTS}
