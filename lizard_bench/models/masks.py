"""Reading padding out of the attention mask transformers hands an attention module.

The shared kernels apply causality themselves and take padding as a key mask; a recurrent
state must learn which tokens are padding before it absorbs them. So the mask is reduced to
one boolean per key ("real token"), and anything it says beyond "causal plus padding" (a
sliding window, packed documents, a custom pattern) stops the forward pass with an
explanation rather than being dropped: a silently wrong score is worse than an error.
"""

from __future__ import annotations

import torch


def key_padding(attention_mask: torch.Tensor | None, query_length: int) -> torch.Tensor | None:
    """Which keys are real tokens: [B, S] bool, or None when nothing is padded.

    ``attention_mask`` is a 2-D padding mask [B, S] (1 = real) or transformers' 4-D mask
    [B, 1, T, S] (bool, True = attend; or additive, 0 = attend) with the queries the last T
    keys. A 4-D mask must equal causal-and-padding on every real query's row; padding rows
    are not checked (nothing reads them).
    """
    if attention_mask is None:
        return None
    if attention_mask.dim() == 2:
        real = attention_mask.bool()
        return None if bool(real.all()) else real
    if attention_mask.dim() != 4:
        raise ValueError(f"expected a [B, S] or [B, 1, T, S] attention mask, got shape {tuple(attention_mask.shape)}")
    allowed = attention_mask if attention_mask.dtype == torch.bool else attention_mask == 0
    kv_length = allowed.shape[-1]
    if allowed.shape[-2] != query_length:
        raise ValueError(f"attention mask covers {allowed.shape[-2]} queries, the layer got {query_length}")
    real = allowed[:, 0, -1, :]  # the last query sees every earlier key: its row is the padding mask
    positions = torch.arange(kv_length, device=allowed.device)
    causal = positions[None, :] <= torch.arange(kv_length - query_length, kv_length, device=allowed.device)[:, None]
    expected = causal[None, None] & real[:, None, None, :]
    checked = real[:, None, -query_length:, None]  # rows of real queries
    if bool(((allowed != expected) & checked).any()):
        raise ValueError("the attention mask says more than causal plus padding (a sliding window, packed sequences "
                         "or a custom pattern), which the shared kernels and recurrent states cannot honour")
    return None if bool(real.all()) else real
