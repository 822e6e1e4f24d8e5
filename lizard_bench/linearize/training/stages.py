"""The two training stages as objects the loop can run: what is trainable, the loss, the evaluation.

Stage 1 (attention transfer): every :class:`LizardAttention` runs in distillation mode, so
one forward pass of the frozen teacher yields each layer's input and target and stores the
MSE between the layer's output and the teacher's; the loss is their mean over layers. Only
the parameters linearization added train. With ``before_o_proj`` each layer matches the
heads' mixed values (o_proj's input) instead of o_proj's output.

Stage 2 (alignment): the linearized layers run for real; LoRA adapters on their q/k/v
projections train on the next-token loss. By default the stage-1 parameters stay frozen, as
in the paper: stage 2 adapts the projections to the new attention. ``train_attention``
trains them too, on the same loss.
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import nn

from lizard_bench.linearize.attention import LizardAttention
from lizard_bench.linearize.convert import lizard_modules, lizard_parameters
from lizard_bench.linearize.training.config import LoraSettings
from lizard_bench.linearize.training.lora import attach_lora, lora_module_names, lora_parameters


class Stage(Protocol):
    name: str  # 'stage1' | 'stage2': file and key names
    title: str  # for progress bars
    metric: str  # what ``loss`` and ``evaluate`` measure
    backward_in_forward: bool  # True: ``loss`` already back-propagated itself and returns a detached value

    def setup(self, model: nn.Module) -> dict[str, nn.Parameter]:
        """Put the model in this stage's mode; return the trainable parameters by name (all others frozen)."""

    def loss(self, model: nn.Module, input_ids: torch.Tensor) -> torch.Tensor: ...

    def evaluate(self, model: nn.Module, input_ids: torch.Tensor) -> dict[str, float]:
        """Scores of one held-out window, without gradients; includes ``metric``."""

    def teardown(self, model: nn.Module) -> None: ...


def only_trainable(model: nn.Module, trainable: dict[str, nn.Parameter]) -> dict[str, nn.Parameter]:
    """Freeze every parameter of ``model`` except ``trainable``; returns them sorted by name (a stable order)."""
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    for parameter in trainable.values():
        parameter.requires_grad_(True)
    return dict(sorted(trainable.items()))


class AttentionTransfer:
    """Stage 1: match every linearized layer's output to the teacher's attention output.

    ``layerwise_scale`` (used under FSDP2, where a sharded layer's weights are gone once its
    forward ends) makes each layer back-propagate its own MSE during the forward, scaled by
    ``layerwise_scale / layers`` so the gradients equal those of ``mean / grad_accum``; it
    also means only one layer's activations are held for backward at a time.
    """

    name, title, metric = "stage1", "stage 1 attention transfer", "attention_mse"

    def __init__(self, layerwise_scale: float | None = None, before_o_proj: bool = False) -> None:
        self.modules: list[LizardAttention] = []
        self.layerwise_scale = layerwise_scale
        self.before_o_proj = before_o_proj
        self.backward_in_forward = layerwise_scale is not None

    def setup(self, model: nn.Module) -> dict[str, nn.Parameter]:
        self.modules = lizard_modules(model)
        if not self.modules:
            raise ValueError("attention transfer needs a linearized model (call linearize first)")
        for module in self.modules:
            module.distill = True
            module.distill_before_o_proj = self.before_o_proj
            if self.layerwise_scale is not None:
                module.distill_backward_scale = self.layerwise_scale / len(self.modules)
        return only_trainable(model, lizard_parameters(model))

    def _layer_mse(self) -> torch.Tensor:
        losses = [module.distill_loss for module in self.modules]
        for module in self.modules:
            module.distill_loss = None  # drop the graph reference as soon as it is used
        return torch.stack(losses).mean()

    def loss(self, model: nn.Module, input_ids: torch.Tensor) -> torch.Tensor:
        model(input_ids=input_ids, use_cache=False, logits_to_keep=1)  # the logits are the teacher's: unused
        return self._layer_mse()

    @torch.no_grad()
    def evaluate(self, model: nn.Module, input_ids: torch.Tensor) -> dict[str, float]:
        # distillation mode passes the teacher's outputs on, so this forward's LM loss is the teacher's
        output = model(input_ids=input_ids, labels=input_ids, use_cache=False)
        return {self.metric: self._layer_mse().item(), "teacher_lm_loss": output.loss.item()}

    def teardown(self, model: nn.Module) -> None:
        for module in self.modules:
            module.distill, module.distill_loss, module.distill_backward_scale = False, None, None
            module.distill_before_o_proj = False


class Alignment:
    """Stage 2: next-token loss through the linearized layers; only LoRA adapters train."""

    name, title, metric = "stage2", "stage 2 LoRA alignment", "lm_loss"
    backward_in_forward = False

    def __init__(self, lora: LoraSettings, seed: int, train_attention: bool = False) -> None:
        self.lora, self.seed, self.train_attention = lora, seed, train_attention

    def setup(self, model: nn.Module) -> dict[str, nn.Parameter]:
        for module in lizard_modules(model):
            module.distill = False
        if not lora_module_names(model):
            attach_lora(model, self.lora, seed=self.seed)
        trainable = lora_parameters(model)
        if self.train_attention:
            trainable = {**trainable, **lizard_parameters(model)}
        return only_trainable(model, trainable)

    def loss(self, model: nn.Module, input_ids: torch.Tensor) -> torch.Tensor:
        return model(input_ids=input_ids, labels=input_ids, use_cache=False).loss

    @torch.no_grad()
    def evaluate(self, model: nn.Module, input_ids: torch.Tensor) -> dict[str, float]:
        return {self.metric: self.loss(model, input_ids).item()}

    def teardown(self, model: nn.Module) -> None:
        pass
