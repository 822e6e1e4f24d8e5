"""Route a transformers model's softmax attention through lizard-bench's shared kernels.

The teacher must run through the same kernel code as the linearized variants, or a speed or
accuracy difference could come from the kernels rather than the method. transformers lets a
model pick its attention function by name; we register ours (``lizard_kernels``) beside
``sdpa`` and reuse sdpa's mask builder, which hands us ``None`` for plain causal batches and
causal-plus-padding otherwise; the padding goes to the kernels as a key mask. Any other
pattern is refused loudly rather than ignored (``models/masks.py``).
"""

from __future__ import annotations

from functools import partial

import torch
from transformers import AttentionInterface
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

from lizard_bench.kernels import softmax_attention
from lizard_bench.models.masks import key_padding

ATTENTION_PREFIX = "lizard_kernels"


def kernel_attention_forward(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    *,
    backend: str | None = None,
    **kwargs,
) -> tuple[torch.Tensor, None]:
    """transformers attention hook: q [B, H, T, D], k/v [B, Hkv, S, D] -> ([B, T, H, D], None)."""
    real = key_padding(attention_mask, query.shape[2])
    if dropout and module.training:
        raise ValueError("attention dropout is not supported by the shared kernels; set attention_dropout=0")
    output = softmax_attention(
        query.transpose(1, 2),
        key.transpose(1, 2),
        value.transpose(1, 2),
        causal=getattr(module, "is_causal", True),
        scale=scaling,
        backend=backend,
        key_mask=real,
    )
    return output, None


def use_kernel_attention(model: torch.nn.Module, backend: str = "auto") -> str:
    """Switch ``model`` (a transformers PreTrainedModel) to the shared kernels; returns the implementation name.

    transformers' registry is global and keyed by name, so each backend gets its own name
    (``lizard_kernels_torch`` ...) and two models in one process can use different backends.
    """
    name = f"{ATTENTION_PREFIX}_{backend}"
    AttentionInterface.register(name, partial(kernel_attention_forward, backend=backend))
    ALL_MASK_ATTENTION_FUNCTIONS.register(name, sdpa_mask)
    model.set_attn_implementation(name)
    return name
