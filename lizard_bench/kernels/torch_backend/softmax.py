"""Softmax attention in PyTorch: the teacher, the windowed local branch with sinks, and everything between.

One entry point routes each case to the cheapest exact computation:

- no window, no sinks: ``scaled_dot_product_attention`` (the teacher's own fused kernel);
- one causal query (a decode step) with a window or sinks: one fused call on CPU, two small products
  elsewhere (``_one_query``);
- causal with a window narrower than the keys: the banded computation of ``window.py``,
  O(T·w) time and memory (for inference on CPU, the same blocks on the fused kernel, ``fused_window.py``);
- anything else (sinks without a window, non-causal with a window): a dense masked
  softmax, computed a block of queries at a time so its memory stays bounded.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lizard_bench.kernels.masking import key_bias
from lizard_bench.kernels.scale import softmax_scale
from lizard_bench.kernels.torch_backend.common import accumulation_dtype, as_dtype, contiguous_as
from lizard_bench.kernels.torch_backend.fused_window import (
    CPU_ATTENTION_WITH_LSE,
    applies,
    fused_window_attention,
    kernel_reads,
)
from lizard_bench.kernels.torch_backend.window import banded_window_attention

# Score elements materialised at once by the dense path (64 MiB in float32).
_DENSE_SCORE_BUDGET = 1 << 24


def softmax_attention(
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
    """Softmax attention: q [B, T, H, D], k [B, S, Hkv, D], v [B, S, Hkv, Dv] -> [B, T, H, Dv].

    Queries are the last T of the S key positions (bottom-right alignment). ``window=w``
    keeps keys j with i - w < j; ``sink_logits`` [H, m] add e^{t} to the normaliser only;
    ``key_mask`` [B, S] (True = attend) hides padded keys (kernels/masking.py).
    Accumulates in float32 (float64 for float64 inputs); the output has q's dtype. With
    ``return_lse`` the log of each row's normaliser [B, T, H] (accumulation dtype) comes too.
    """
    T, S, D = q.shape[1], k.shape[1], q.shape[-1]
    scale = softmax_scale(D, scale)
    if window is not None and window >= S:
        window = None  # every key is already inside the window: i - w < 0 <= j
    if window is None and sink_logits is None and not return_lse:
        return _sdpa(q, k, v, causal=causal, scale=scale, key_mask=key_mask)
    if T == 1 and causal:
        return _one_query(q, k, v, window=window, sinks=sink_logits, scale=scale, return_lse=return_lse,
                          key_mask=key_mask)
    if causal and window is not None:
        if T <= window:
            # One block of queries: only the last T + w - 1 keys are visible to any of them.
            start = max(0, S - T - window + 1)
            return _dense(q, k[:, start:], v[:, start:], causal=True, window=window, sinks=sink_logits, scale=scale,
                          return_lse=return_lse, key_mask=None if key_mask is None else key_mask[:, start:])
        if applies(q, k, v, sink_logits, key_mask):
            def dense(q_rows, keys, values):
                return _dense(q_rows, keys, values, causal=True, window=window, sinks=sink_logits, scale=scale,
                              return_lse=True)
            return fused_window_attention(q, k, v, window=window, sink_logits=sink_logits, scale=scale,
                                          return_lse=return_lse, dense=dense)
        return banded_window_attention(q, k, v, window=window, sink_logits=sink_logits, scale=scale,
                                       return_lse=return_lse, key_mask=key_mask)
    return _dense(q, k, v, causal=causal, window=window, sinks=sink_logits, scale=scale, return_lse=return_lse,
                  key_mask=key_mask)


def _sdpa(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, causal: bool, scale: float,
    key_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """The teacher path: PyTorch's fused attention, with bottom-right causal alignment when T < S.

    ``is_causal`` aligns the mask top-left, which is only right when T == S; a decode or
    chunked-prefill query block needs an explicit mask. ``enable_gqa`` (torch >= 2.5)
    broadcasts KV heads without copying the cache. Padded keys make the mask additive
    ([B, 1, T, S]), with finite scores for masked keys so padding rows stay finite.
    """
    T, H, S, Hkv = q.shape[1], q.shape[2], k.shape[1], k.shape[2]
    qt, kt, vt = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # [B, heads, seq, D] views
    mask = None
    if causal and (T not in (1, S) or key_mask is not None):
        query_pos = torch.arange(S - T, S, device=q.device).view(T, 1)
        mask = torch.arange(S, device=q.device).view(1, S) <= query_pos  # [T, S], True = visible
    if key_mask is not None:
        floor = torch.finfo(q.dtype).min  # a 16-bit mask cannot hold -1e30: it would become -inf, then NaN
        bias = key_bias(key_mask, accumulation_dtype(q.dtype)).clamp_min(floor).to(q.dtype)[:, None, None, :]
        mask = bias if mask is None else bias.masked_fill(~mask, float("-inf"))
    out = F.scaled_dot_product_attention(
        qt, kt, vt, attn_mask=mask, is_causal=causal and mask is None and T == S and T > 1, scale=scale,
        enable_gqa=H != Hkv,
    )
    return out.transpose(1, 2)


def softmax_attention_step(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, sink_logits: torch.Tensor | None = None,
    sink_values: torch.Tensor | None = None, scale: float | None = None,
) -> torch.Tensor:
    """One query per row and head, q [B, H, D], against every key of k [B, S, Hkv, D] (any order) -> [B, H, Dv].

    The sinks' weight carries ``sink_values`` [B, H, Dv] (zero when None) into the output.
    """
    out, lse = _single_queries(q, k, v, scale=softmax_scale(q.shape[-1], scale), key_mask=None)
    return as_dtype(_with_sinks(out, lse, sink_logits, sink_values, need_lse=False)[0], q.dtype)


def _one_query(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    window: int | None,
    sinks: torch.Tensor | None,
    scale: float,
    return_lse: bool,
    key_mask: torch.Tensor | None,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """One causal query (q [B, 1, H, D], a decode step) against the last ``window`` keys (all if None), with sinks."""
    S = k.shape[1]
    if window is not None and window < S:
        k, v = k[:, S - window :], v[:, S - window :]
        key_mask = None if key_mask is None else key_mask[:, S - window :]
    out, lse = _single_queries(q[:, 0], k, v, scale=scale, key_mask=key_mask)
    out, lse = _with_sinks(out, lse, sinks, None, need_lse=return_lse)
    out = out.unsqueeze(1).to(q.dtype)
    return (out, lse.unsqueeze(1)) if return_lse else out


def _single_queries(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, scale: float, key_mask: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax of one query per head, q [B, H, D], over all keys -> (out [B, H, Dv], lse [B, H]), accumulated in
    float32 (float64 for float64 inputs).

    Why this shape of computation: a decode step is one query per head, so its arithmetic is two
    small products, and what it costs is the number of calls (every layer pays them for every token).
    The G query heads sharing a KV head are G queries of one head, so grouped keys are read in place.
    On CPU PyTorch's fused attention kernel computes both outputs in one call (~4x faster than the
    softmax written out); elsewhere, and with a key mask, it is written out.
    """
    B, H, D = q.shape
    Hkv, Dv = k.shape[2], v.shape[-1]
    acc = accumulation_dtype(q.dtype)
    rows = q.reshape(B, Hkv, H // Hkv, D)  # query head h reads KV head h // G
    keys, values = k.transpose(1, 2), v.transpose(1, 2)  # [B, Hkv, S, D] views
    if kernel_reads(q, k, v, key_mask):
        out, lse = CPU_ATTENTION_WITH_LSE(rows, keys, values, 0.0, False, scale=scale)
    else:
        scores = torch.matmul(rows.to(acc), keys.to(acc).transpose(-1, -2)).mul_(scale)  # [B, Hkv, G, S]
        if key_mask is not None:
            scores = scores.add_(key_bias(key_mask, acc).view(B, 1, 1, -1))
        lse = torch.logsumexp(scores, dim=-1)
        out = torch.matmul(torch.exp(scores - lse[..., None]), values.to(acc))
    return out.reshape(B, H, Dv), as_dtype(lse.reshape(B, H), acc)


def _with_sinks(
    out: torch.Tensor, lse: torch.Tensor, sink_logits: torch.Tensor | None, sink_values: torch.Tensor | None,
    need_lse: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Add the sinks to a softmax over keys: their share π = Σ_r e^{t_r} / (e^{lse} + Σ_r e^{t_r}) of the normaliser
    goes to ``sink_values`` u (zero when None): out + π (u − out). Returns (out, lse with the sinks if ``need_lse``).

    One sink ([H, 1]) is its own total, so a caller holding log Σ_r e^{t_r} saves the reduction.
    """
    if sink_logits is None:
        return out, lse
    total = sink_logits[:, 0] if sink_logits.shape[-1] == 1 else torch.logsumexp(sink_logits, dim=-1)
    share = torch.sigmoid(as_dtype(total, lse.dtype) - lse)[..., None]  # [B, H, 1]
    carried = torch.zeros((), dtype=out.dtype, device=out.device) if sink_values is None else sink_values
    out = torch.lerp(out, as_dtype(carried, out.dtype), as_dtype(share, out.dtype))
    return out, (torch.logaddexp(lse, total) if need_lse else lse)


def _dense(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    causal: bool,
    window: int | None,
    sinks: torch.Tensor | None,
    scale: float,
    return_lse: bool = False,
    key_mask: torch.Tensor | None = None,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Masked softmax over all S keys, a block of queries at a time (O(T·S) time, bounded memory).

    Used for sinks without a window, windows wider than a query block, and non-causal
    windows (which, as in the reference, keep every key j > i - w, future keys included).
    """
    B, T, H, D = q.shape
    S, Hkv, Dv = k.shape[1], k.shape[2], v.shape[-1]
    G = H // Hkv
    m = 0 if sinks is None else sinks.shape[-1]
    acc = accumulation_dtype(q.dtype)
    # Grouped-query layout: the G query heads that share a KV head become extra rows.
    qg = q.view(B, T, Hkv, G, D).permute(0, 2, 3, 1, 4).to(acc)  # [B, Hkv, G, T, D] (view when possible)
    kt = contiguous_as(k.permute(0, 2, 3, 1), acc)  # [B, Hkv, D, S]
    # Sinks are m extra score columns holding their logits, against m zero value rows:
    # they join the softmax normaliser and add nothing to the output (as in window.py).
    vt = contiguous_as(F.pad(v.permute(0, 2, 1, 3), (0, 0, 0, m)) if m else v.permute(0, 2, 1, 3), acc)
    key_pos = torch.arange(S, device=q.device)
    padded = None if key_mask is None else key_bias(key_mask, acc).view(B, 1, 1, 1, S)
    block = max(1, _DENSE_SCORE_BUDGET // max(1, B * H * (S + m)))
    outputs, normalisers = [], []
    for start in range(0, T, block):
        stop = min(T, start + block)
        rows = qg[:, :, :, start:stop].reshape(B, Hkv, G * (stop - start), D)
        scores = torch.matmul(rows, kt).mul_(scale).view(B, Hkv, G, stop - start, S)
        query_pos = torch.arange(S - T + start, S - T + stop, device=q.device).view(-1, 1)
        hidden = torch.zeros(stop - start, S, dtype=torch.bool, device=q.device)
        if causal:
            hidden |= key_pos > query_pos
        if window is not None:
            hidden |= key_pos <= query_pos - window
        scores = scores.masked_fill_(hidden, float("-inf"))
        if padded is not None:
            scores = scores.add_(padded)
        if m:
            sink = sinks.to(acc).view(1, Hkv, G, 1, m).expand(B, Hkv, G, stop - start, m)
            scores = torch.cat([scores, sink], dim=-1)  # [B, Hkv, G, Tb, S+m]
        if return_lse:
            normalisers.append(torch.logsumexp(scores, dim=-1))  # [B, Hkv, G, Tb]
        probs = torch.softmax(scores, dim=-1).view(B, Hkv, G * (stop - start), S + m)
        outputs.append(torch.matmul(probs, vt).view(B, Hkv, G, stop - start, Dv))
    out = torch.cat(outputs, dim=3) if len(outputs) > 1 else outputs[0]
    out = out.permute(0, 3, 1, 2, 4).reshape(B, T, H, Dv).to(q.dtype)
    if not return_lse:
        return out
    return out, torch.cat(normalisers, dim=3).permute(0, 3, 1, 2).reshape(B, T, H)
