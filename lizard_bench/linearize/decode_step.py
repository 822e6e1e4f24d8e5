"""One decode step of the two-branch forms, written out for a single token without padding.

Why a path of its own: a decode step is one query per head, so its arithmetic is a handful of
small products, and the general path (padding reorder, per-query positions, the anchors'
separate softmax and merge, chunk bookkeeping) costs more in Python and small calls than
that arithmetic, in every layer for every token. This path takes the common case (no
padding now or before, every anchor already out of the window, no valued sinks) through the
kernels' step functions and gives the general path's numbers to float rounding
(``tests/linearize/test_decode_step.py``); everything else goes the general way.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import torch

from lizard_bench.kernels import gated_linear_attention_step, softmax_attention_step
from lizard_bench.kernels.torch_backend.common import as_dtype
from lizard_bench.linearize.cache import LizardCacheLayer
from lizard_bench.linearize.config import LinearizeConfig
from lizard_bench.linearize.heads import rotate_half

if TYPE_CHECKING:
    from lizard_bench.linearize.attention import LizardAttention


def takes_fast_step(attention: LizardAttention, length: int, state: LizardCacheLayer | None,
                    real: torch.Tensor | None) -> bool:
    """Whether this forward is a decode step :func:`decode_step` computes."""
    if length != 1 or state is None or real is not None or torch.is_grad_enabled() or state.padded:
        return False
    config = attention.config
    if config.combine == "shared" or hasattr(attention, "sink_values"):
        return False
    if config.linear_branch and state.gla is None:  # no prefill yet: the general path starts the state
        return False
    return not config.num_anchors or every_anchor_past_window(config, state.seen)


def every_anchor_past_window(config: LinearizeConfig, seen: int) -> bool:
    """Whether the token after ``seen`` others sees every anchor outside its window: the token at position
    p >= w + m - 1 does (anchor a leaves the window once a <= p - w)."""
    return seen >= config.window + config.num_anchors - 1


def decode_step(attention: LizardAttention, x: torch.Tensor, position_embeddings, state: LizardCacheLayer):
    """x [B, 1, d_model] -> the heads' mixed output [B, 1, H·D] (o_proj's input); advances ``state``."""
    config, combine = attention.config, attention.config.combine
    B, D, base = x.shape[0], attention.head_dim, attention.base
    token = x.view(B, -1)  # [B, d_model]: a 2-D input is one addmm per projection, without matmul's reshapes
    q, k, v = (proj(token).view(B, -1, D) for proj in (base.q_proj, base.k_proj, base.v_proj))  # [B, heads, D]
    heads = torch.cat([q, k], dim=1)  # query and key heads side by side: one call each for the features, RoPE
    linear = None
    if config.linear_branch:
        features_q, features_k = paired_features(attention, heads)
        linear, state.gla = gated_linear_attention_step(
            as_dtype(features_q, v.dtype), as_dtype(features_k, v.dtype), v, attention.gate(token), state.gla,
            eps=config.eps, normalize=combine != "unnormalised", in_place=True,
        )
        if combine == "unnormalised":
            linear = linear * attention.gla_log_scale.exp().view(1, -1, 1).to(linear.dtype)
    out = linear
    if config.window:
        if config.window_rope:
            cos, sin = (as_dtype(t, heads.dtype) for t in position_embeddings)  # [B, 1, D]: broadcast over heads
            heads = torch.addcmul(heads * cos, rotate_half(heads), sin)
        q, k = heads[:, : attention.num_heads], heads[:, attention.num_heads :]
        new, keep = (k[:, None], v[:, None]), config.window - 1
        if config.num_anchors:  # one softmax over anchors and window: order does not matter to one query
            keys, values = state.ring_with_prefix(("k", "v"), new, keep, ("anchor_k", "anchor_v"), group="kv")
        else:
            (keys, values), _ = state.extend_window(("k", "v"), new, keep, None, group="kv")
        # 'convex' (ŷ_win + π ŷ_gla, π the sinks' share of the normaliser) is the sinks carrying ŷ_gla as their value
        convex = combine == "convex" and linear is not None
        # the sinks as one sink of logit log Σ_r e^{t_r} (the same normaliser), held between optimizer steps
        sinks = attention._sinks_log_total()[:, None] if hasattr(attention, "sink_logits") else None
        window_out = softmax_attention_step(q, keys, values, sink_logits=sinks, sink_values=linear if convex else None)
        if linear is None or convex:
            out = window_out
        else:
            out = linear + attention.alpha.view(1, -1, 1).to(linear.dtype) * window_out
    state.seen += 1
    return out.reshape(x.shape[0], 1, -1).to(x.dtype)


def paired_features(attention: LizardAttention, heads: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """φ_q and φ_k of one token, float32 [B, H, F] each, from ``heads`` [B, H + Hkv, D] (q's heads, then k's).

    Why: the two Hedgehog maps of one token are 2H small products, which written as two module calls (and
    a copy of k per query head) cost more calls than arithmetic. Here the key heads are gathered for their
    query heads, each map's product writes into one shared tensor, and one softmax takes both. (Stacking
    the two weights instead would hold a copy of them, 9 MB for SmolLM2, for the whole decode.)
    """
    H = attention.num_heads
    rows = as_dtype(heads.index_select(1, _query_and_key_heads(H, attention.groups, heads.device)), torch.float32)
    rows = rows.transpose(0, 1)  # [2H, B, D]
    weights = [as_dtype(m.weight, torch.float32) for m in (attention.feature_q, attention.feature_k)]  # [H, D, F/2]
    projected = rows.new_empty(2 * H, rows.shape[1], weights[0].shape[-1])
    torch.bmm(rows[:H], weights[0], out=projected[:H])
    torch.bmm(rows[H:], weights[1], out=projected[H:])
    features = torch.stack([projected, -projected], dim=-2).softmax(dim=-1).flatten(-2).transpose(0, 1)
    return features[:, :H], features[:, H:]


@functools.lru_cache(maxsize=16)
def _query_and_key_heads(num_heads: int, groups: int, device: torch.device) -> torch.Tensor:
    """Rows of [q heads, k heads] giving q's H heads, then for each query head h its key head h // groups."""
    key_heads = num_heads + torch.arange(num_heads) // groups
    return torch.cat([torch.arange(num_heads), key_heads]).to(device)
