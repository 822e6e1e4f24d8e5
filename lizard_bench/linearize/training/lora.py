"""Stage-2 LoRA adapters through peft, attached to the linearized layers' q/k/v projections only.

Only layers that were linearized get adapters. Layers kept as softmax in a hybrid still
compute exactly what the teacher computed, so there is nothing for an adapter to realign
there; adapting them would also let stage 2 move the hybrid's "teacher" layers and blur
what a hybrid ablation measures. Inside :class:`LizardAttention` the teacher's projections
live at ``<layer>.self_attn.base.q_proj``; targets are given to peft as full module names,
so no other module whose name happens to end in ``q_proj`` is touched.

Adapters are injected in place (``peft.inject_adapter_in_model``): the model stays the same
transformers class the rest of the harness handles, rather than a ``PeftModel`` wrapper.
"""

from __future__ import annotations

import torch
from peft import LoraConfig, inject_adapter_in_model
from peft.tuners.lora import LoraLayer
from torch import nn

from lizard_bench.linearize.convert import lizard_modules
from lizard_bench.linearize.training.config import LoraSettings

ADAPTER = "default"


def lora_target_names(model: nn.Module, targets: list[str]) -> list[str]:
    """Full module names of the projections that get adapters: ``targets`` of every linearized layer."""
    owners = {id(module): name for name, module in model.named_modules()}
    names = [f"{owners[id(module)]}.base.{projection}" for module in lizard_modules(model) for projection in targets]
    if not names:
        raise ValueError("the model has no linearized attention layers to attach LoRA adapters to")
    return names


def attach_lora(model: nn.Module, settings: LoraSettings, seed: int) -> list[str]:
    """Inject LoRA adapters (B = 0, so the model's output is unchanged); returns the adapted module names.

    The random A matrices are drawn from a generator seeded with ``seed`` so that a resumed or
    reloaded run builds the same adapters whatever happened to the global RNG before.
    """
    names = lora_target_names(model, settings.targets)
    config = LoraConfig(r=settings.r, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
                        target_modules=names, bias="none")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        inject_adapter_in_model(config, model, adapter_name=ADAPTER)
    return names


def lora_parameters(model: nn.Module) -> dict[str, nn.Parameter]:
    """The adapter weights by qualified name (``...q_proj.lora_A.default.weight``)."""
    return {name: parameter for name, parameter in model.named_parameters() if ".lora_" in name}


def lora_module_names(model: nn.Module) -> list[str]:
    return [name for name, module in model.named_modules() if isinstance(module, LoraLayer)]


def merge_lora(model: nn.Module) -> int:
    """Fold every adapter into its projection and remove the adapter modules; returns how many.

    The merged model runs the teacher's projection shapes with no extra matmuls, which is
    what an efficiency benchmark should measure. The base weights change, so hash the base
    model before merging.
    """
    merged = 0
    for name in lora_module_names(model):
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        layer = getattr(parent, child)
        layer.merge()
        setattr(parent, child, layer.get_base_layer())
        merged += 1
    if hasattr(model, "peft_config"):
        del model.peft_config  # left by injection; a model without adapters must not look like a peft model
    return merged
