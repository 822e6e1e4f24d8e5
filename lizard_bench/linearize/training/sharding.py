"""FSDP2 for linearization training: shard the frozen teacher, keep what trains replicated.

Sharding is for the teacher: its weights are nearly all of the memory (16 GB for an 8B
model in bf16), and they never change. What trains (feature maps, gates, sinks, α, LoRA)
is small: 21M + 4.7M parameters (100 MB in float32) for a Llama-3-8B shape. So it stays a
whole, ordinary tensor on every process: FSDP2 is told to ignore it (``ignored_params``), and its gradients are averaged
across processes here after each optimizer step's backward passes, as data parallel would.

Stage 1 needs one more change. Its loss is not a layer's output but a side value each
linearized layer stores during its forward (the MSE against the teacher's attention output,
which runs through the teacher's o_proj). FSDP2 frees a layer's gathered weights when its
forward ends and gathers them again only for a backward pass that enters through the
layer's outputs, so that side path cannot be back-propagated later: under FSDP2 each layer
back-propagates its own MSE inside its forward (``AttentionTransfer(layerwise_scale=...)``).
Replicated trainable parameters keep this simple (their gradients need no FSDP hook) and
keep checkpoints simple: every process holds the same full tensors, so the main process
saves them as they are and every process loads them as they are, sharded run or not.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedType
from torch import nn

from lizard_bench.linearize.convert import lizard_parameters
from lizard_bench.linearize.training.lora import lora_parameters


def check_supported(accelerator: Accelerator) -> None:
    """Refuse the distributed modes whose checkpoints this training cannot read or write.

    ValueError, like other bad input: the command line prints it as one line and exits 2.
    """
    mode = accelerator.distributed_type
    if mode == DistributedType.DEEPSPEED or (mode == DistributedType.FSDP and not accelerator.is_fsdp2):
        name = "FSDP1" if mode == DistributedType.FSDP else mode.value
        raise ValueError(
            f"linearization training does not support {name}: use FSDP2 (fsdp_version: 2 in the accelerate "
            "config) or plain data parallel (accelerate launch --multi_gpu)"
        )
    if mode == DistributedType.FSDP and accelerator.mixed_precision == "fp16":
        raise ValueError("FSDP2 linearization training runs in bf16 or float32, not fp16 (stage 1 back-propagates "
                           "inside the forward, past fp16 loss scaling): use --mixed_precision bf16")


def is_sharded(accelerator: Accelerator) -> bool:
    return accelerator.distributed_type == DistributedType.FSDP


class _ParameterSet(nn.Module):
    """A detached holder whose ``parameters()`` are the given ones: the form accelerate's FSDP2
    plugin takes ignored parameters in (``ignored_modules``). It is never part of the model."""

    def __init__(self, params: Iterable[nn.Parameter]) -> None:
        super().__init__()
        self.held = nn.ParameterList(params)


def replicate_trainable(accelerator: Accelerator, model: nn.Module) -> None:
    """Before the model is first prepared under FSDP2: exclude every added parameter from sharding.

    Covers both stages at once (linearization parameters and LoRA adapters, which must
    therefore be attached before the first stage), because a model is sharded only once.
    FSDP2 moves what it shards to the process's device; the parameters it ignores are moved here.
    Refuses a user's own ``ignored_modules``: combining the two is not supported.
    """
    plugin = accelerator.state.fsdp_plugin
    current = plugin.ignored_modules
    if current is not None and not (isinstance(current, list) and all(isinstance(m, _ParameterSet) for m in current)):
        raise ValueError("linearization training sets FSDP's ignored_modules itself: remove it from the "
                           "accelerate config")
    replicated = {**lizard_parameters(model), **lora_parameters(model)}.values()
    for parameter in replicated:
        parameter.data = parameter.data.to(accelerator.device)
    plugin.ignored_modules = [_ParameterSet(replicated)]


def average_gradients(params: Iterable[nn.Parameter], accelerator: Accelerator) -> None:
    """All-reduce (mean) the gradients of replicated parameters in one flat buffer, in place."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = accelerator.reduce(torch.cat([g.reshape(-1) for g in grads]), reduction="mean")
    offset = 0
    for grad in grads:
        grad.copy_(flat[offset:offset + grad.numel()].view_as(grad))
        offset += grad.numel()
