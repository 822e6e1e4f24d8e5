"""Variants: the ways one pretrained model is run (the softmax teacher, linearized forms).

Every variant runs its attention through the shared kernels, so comparisons between them
are like for like. Linearized variants register here as they are added.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from lizard_bench.models.kernel_attention import use_kernel_attention
from lizard_bench.models.loading import LoadedModel


@dataclass(frozen=True)
class Variant:
    name: str
    description: str
    prepare: Callable[[LoadedModel, str], None]  # (model, kernel backend) -> modifies the model in place


def _prepare_softmax(loaded: LoadedModel, backend: str) -> None:
    use_kernel_attention(loaded.model, backend)


VARIANTS: dict[str, Variant] = {
    "softmax": Variant("softmax", "the pretrained teacher: causal softmax attention through the shared kernels",
                       _prepare_softmax),
}


def get_variant(name: str) -> Variant:
    if name not in VARIANTS:
        choices = ", ".join(VARIANTS)
        raise KeyError(f"unknown variant {name!r}: choose one of {choices} (see `lizard-bench list variants`)")
    return VARIANTS[name]
