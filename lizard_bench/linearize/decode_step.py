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

from typing import TYPE_CHECKING

import torch

from lizard_bench.kernels import gated_linear_attention_step, softmax_attention_step
from lizard_bench.linearize.cache import LizardCacheLayer
from lizard_bench.linearize.config import LinearizeConfig
from lizard_bench.linearize.heads import apply_rope_pair, repeat_kv

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
    q, k, v = attention.project(x)
    linear = None
    if config.linear_branch:
        features_q = attention.feature_q(q)[:, 0].to(v.dtype)
        features_k = attention.feature_k(repeat_kv(k, attention.groups))[:, 0].to(v.dtype)
        linear, state.gla = gated_linear_attention_step(
            features_q, features_k, v[:, 0], attention.gate(x)[:, 0], state.gla, eps=config.eps,
            normalize=combine != "unnormalised", in_place=True,
        )
        if combine == "unnormalised":
            linear = linear * attention.gla_log_scale.exp().view(1, -1, 1).to(linear.dtype)
    out = linear
    if config.window:
        if config.window_rope:
            q, k = apply_rope_pair(q, k, *position_embeddings)
        (keys, values), _ = state.extend_window(("k", "v"), (k, v), config.window - 1, None, group="kv")
        if config.num_anchors:  # one softmax over anchors and window: order does not matter to one query
            keys = torch.cat([state.buffers["anchor_k"], keys], dim=1)
            values = torch.cat([state.buffers["anchor_v"], values], dim=1)
        # 'convex' (ŷ_win + π ŷ_gla, π the sinks' share of the normaliser) is the sinks carrying ŷ_gla as their value
        convex = combine == "convex" and linear is not None
        # the sinks as one sink of logit log Σ_r e^{t_r} (the same normaliser), held between optimizer steps
        sinks = attention._sinks_log_total()[:, None] if hasattr(attention, "sink_logits") else None
        window_out = softmax_attention_step(q[:, 0], keys, values, sink_logits=sinks,
                                            sink_values=linear if convex else None)
        if linear is None or convex:
            out = window_out
        else:
            out = linear + attention.alpha.view(1, -1, 1).to(linear.dtype) * window_out
    state.seen += 1
    return out.reshape(x.shape[0], 1, -1).to(x.dtype)
