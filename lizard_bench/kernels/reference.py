"""Float64 naive references for the attention kernels.

These are the specification: slow, obviously correct, and written the way the mathematics
in docs/design.md §2 reads (a dense masked softmax; a per-token recurrence for gated linear
attention). Every backend is tested against them on fresh random inputs.
"""

from __future__ import annotations

import torch

from lizard_bench.kernels.masking import key_bias
from lizard_bench.kernels.scale import softmax_scale
from lizard_bench.kernels.state import GLAState


def _repeat_kv(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    """Broadcast KV heads to query heads for grouped-query attention ([B, S, Hkv, D])."""
    groups = n_heads // x.shape[2]
    return x.repeat_interleave(groups, dim=2)


def softmax_attention_reference(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    causal: bool = True,
    window: int | None = None,
    sink_logits: torch.Tensor | None = None,
    scale: float | None = None,
    return_lse: bool = False,
    key_mask: torch.Tensor | None = None,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Dense masked softmax attention in float64 (with ``return_lse``, also log normalisers [B, T, H]).

    Shapes: q [B, T, H, D], k [B, S, Hkv, D], v [B, S, Hkv, Dv] -> [B, T, H, Dv].
    Queries are the last T of the S positions (bottom-right alignment), so decoding one
    token against a cache of S keys is the T = 1 case. ``sink_logits`` [H, m] add
    e^{t_r} to the normaliser only (meta-memory sinks carry no value). ``key_mask`` [B, S]
    (True = attend) adds ``MASKED_KEY_SCORE`` to masked keys' scores (kernels/masking.py).
    """
    B, T, H, D = q.shape
    S = k.shape[1]
    scale = softmax_scale(D, scale)
    q64, k64, v64 = q.double(), _repeat_kv(k.double(), H), _repeat_kv(v.double(), H)
    scores = torch.einsum("bthd,bshd->bhts", q64, k64) * scale
    query_pos = torch.arange(S - T, S).view(T, 1)
    key_pos = torch.arange(S).view(1, S)
    visible = torch.ones(T, S, dtype=torch.bool)
    if causal:
        visible &= key_pos <= query_pos
    if window is not None:
        visible &= key_pos > query_pos - window
    scores = scores.masked_fill(~visible, float("-inf"))
    if key_mask is not None:
        scores = scores + key_bias(key_mask, torch.float64)[:, None, None, :]
    if sink_logits is not None:
        sinks = sink_logits.double().view(1, H, 1, -1).expand(B, H, T, -1)
        scores = torch.cat([scores, sinks], dim=-1)
    probs = torch.softmax(scores, dim=-1)[..., :S]
    out = torch.einsum("bhts,bshd->bthd", probs, v64)
    return (out, torch.logsumexp(scores, dim=-1).transpose(1, 2)) if return_lse else out


def gated_linear_attention_reference(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    log_gate: torch.Tensor,
    *,
    initial_state: GLAState | None = None,
    eps: float = 1e-6,
    normalize: bool = True,
) -> tuple[torch.Tensor, GLAState]:
    """Per-token recurrence of scalar-gated linear attention with normaliser, float64.

    S_i = γ_i S_{i-1} + k_i v_iᵀ,  z_i = γ_i z_{i-1} + k_i,
    o_i = q_iᵀ S_i / (q_iᵀ z_i + eps), or o_i = q_iᵀ S_i when ``normalize`` is False.
    Shapes: q [B, T, H, K], k [B, T, Hk, K], v [B, T, Hv, V], log_gate [B, T, H] (log γ <= 0),
    with Hk and Hv dividing H (query head h reads key head h // (H / Hk), value head h // (H / Hv)).
    Returns the output [B, T, H, V] and the final state (per query head).
    """
    B, T, H, K = q.shape
    V = v.shape[-1]
    k, v = _repeat_kv(k, H), _repeat_kv(v, H)
    if initial_state is None:
        S = q.new_zeros(B, H, K, V, dtype=torch.float64)
        z = q.new_zeros(B, H, K, dtype=torch.float64)
    else:
        S, z = initial_state.S.double(), initial_state.z.double()
    out = q.new_empty(B, T, H, V, dtype=torch.float64)
    for t in range(T):
        gamma = log_gate[:, t].double().exp()
        S = gamma[..., None, None] * S + torch.einsum("bhk,bhv->bhkv", k[:, t].double(), v[:, t].double())
        z = gamma[..., None] * z + k[:, t].double()
        num = torch.einsum("bhk,bhkv->bhv", q[:, t].double(), S)
        den = torch.einsum("bhk,bhk->bh", q[:, t].double(), z)
        out[:, t] = num / (den[..., None] + eps) if normalize else num
    return out, GLAState(S=S, z=z)
