"""Swapping a transformers model's attention modules for linearized ones (see :mod:`.layers`).

A linearized Llama becomes a :class:`~lizard_bench.linearize.modeling.LizardLlamaForCausalLM`,
so ``save_pretrained`` writes a directory that transformers loads as it is (docs/design.md §5).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from lizard_bench.linearize.attention import LizardAttention
from lizard_bench.linearize.config import LinearizeConfig, method_config
from lizard_bench.linearize.layers import (
    SUPPORTED_MODEL_TYPES,
    UnsupportedModelError,
    check_linearizable,
    decoder_layers,
    install_lizard_attention,
)
from lizard_bench.linearize.modeling import adopt_lizard_classes
from lizard_bench.linearize.prefill import DEFAULT_PREFILL_CHUNK

__all__ = [
    "SUPPORTED_MODEL_TYPES",
    "UnsupportedModelError",
    "decoder_layers",
    "linearize",
    "lizard_modules",
    "lizard_parameters",
]


def linearize(
    model: nn.Module, method: str = "lizard", *, kernel_backend: str | None = None, **options: Any
) -> LinearizeConfig:
    """Replace every attention module of ``model`` (except ``softmax_layers``) in place; returns the config.

    The teacher's weights are frozen; only the new modules' parameters are trainable. Options
    are :class:`LinearizeConfig` fields (``window=64``, ``softmax_layers=[0, 5]``, ...). ``generate()``
    then prefills in chunks of ``DEFAULT_PREFILL_CHUNK`` tokens (``linearize/prefill.py``) unless the
    model's generation config already sets ``prefill_chunk_size``.
    """
    config = method_config(method, **options)
    check_linearizable(model, config)  # refuse before changing anything
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    install_lizard_attention(model, config, kernel_backend=kernel_backend)
    model.config.lizard = config.to_dict()  # what rebuilds these layers from a saved directory
    adopt_lizard_classes(model)
    generation = getattr(model, "generation_config", None)
    if generation is not None and generation.prefill_chunk_size is None:
        # generate() then takes a long prompt through the constant-size state in chunks (flat memory,
        # same tokens); prompts up to one chunk run exactly as before
        generation.prefill_chunk_size = DEFAULT_PREFILL_CHUNK
    return config


def lizard_modules(model: nn.Module) -> list[LizardAttention]:
    return [module for module in model.modules() if isinstance(module, LizardAttention)]


def lizard_parameters(model: nn.Module) -> dict[str, nn.Parameter]:
    """What linearization added (feature maps, gates, sinks, α), by qualified name, excluding the teacher's."""
    return {
        f"{module_name}.{name}": parameter
        for module_name, module in model.named_modules()
        if isinstance(module, LizardAttention)
        for name, parameter in module.named_parameters()
        if not name.startswith("base.")
    }
