"""Checking that an attention mask says nothing beyond "causal".

The shared kernels apply causality themselves and take no mask; a recurrent state would
also silently absorb padding tokens. So a mask with padding in it must stop the forward
pass with an explanation, never be dropped.
"""

from __future__ import annotations

import torch


def ensure_plain_causal(attention_mask: torch.Tensor | None, query_length: int) -> None:
    """Raise ValueError unless ``attention_mask`` ([B, 1, T, S], bool or additive) is bottom-right causal."""
    if attention_mask is None:
        return
    allowed = attention_mask if attention_mask.dtype == torch.bool else attention_mask == 0
    kv_length = allowed.shape[-1]
    positions = torch.arange(kv_length, device=allowed.device)
    query_positions = torch.arange(kv_length - query_length, kv_length, device=allowed.device)
    causal = positions[None, :] <= query_positions[:, None]
    if allowed.shape[-2] != query_length or not torch.equal(allowed, causal.expand_as(allowed)):
        raise ValueError(
            "got an attention mask with padding (or a custom pattern), which the shared kernels and recurrent "
            "states cannot honour: score unpadded sequences (batch size 1, or equal lengths)"
        )
