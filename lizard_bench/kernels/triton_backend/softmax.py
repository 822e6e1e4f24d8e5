"""Softmax attention in Triton, FlashAttention style: causal or windowed, meta-memory sinks, GQA.

Layout ``[B, T, H, D]``. Queries are the last T of the S key positions (bottom-right
alignment), so query row i sits at key position ``i + S - T``. A query block visits only the
key blocks that intersect its causal/window range (block skipping); the visibility mask is
applied in the boundary blocks only, the blocks in between run unmasked.

Forward: online softmax in base 2 with float32 accumulators. The running maximum starts at
the largest sink logit, so the sinks take part in the max-shift and nothing overflows; the
sinks add ``e^{t_r}`` to the normaliser and no value. Each row's log-sum-exp (base 2) is
stored for the backward pass. A key mask arrives as one additive score per key
(``kernels/masking.py``), added to every block's scores, masked or not.

Backward: ``delta_i = rowsum(dO_i * O_i)``; one kernel walks key blocks for dq, one walks
query blocks (all query heads of a KV group) for dk and dv, so the GQA sum happens in
registers without atomics. The sink gradient ``dt_r = -sum_i delta_i exp(t_r - lse_i)`` is a
few [B, H, T] operations in PyTorch.
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from lizard_bench.kernels.masking import key_bias
from lizard_bench.kernels.scale import softmax_scale
from lizard_bench.kernels.triton_backend.utils import (
    check_device,
    dot_precision,
    feature_block,
    interpreting,
)

LN2 = math.log(2.0)
LOG2E = math.log2(math.e)
_LOG2E = tl.constexpr(LOG2E)


# ----------------------------------------------------------------------------- index helpers


@triton.jit
def _visible(pos_q, pos_k, S, W, CAUSAL: tl.constexpr, HAS_WINDOW: tl.constexpr):
    """Which (query, key) pairs attend; ``pos_q`` and ``pos_k`` broadcast against each other."""
    mask = pos_k < S
    if CAUSAL:
        mask = mask & (pos_k <= pos_q)
    if HAS_WINDOW:
        mask = mask & (pos_k > pos_q - W)
    return mask


@triton.jit
def _split_blocks(lo, full_lo, full_hi, hi, BLOCK: tl.constexpr):
    """Split the span [lo, hi) into block-aligned pieces [lo', a) masked, [a, b) unmasked, [b, hi) masked.

    ``[full_lo, full_hi)`` is where no mask is needed; all bounds are >= 0 on entry.
    """
    lo = lo // BLOCK * BLOCK
    a = tl.maximum(tl.minimum((full_lo + BLOCK - 1) // BLOCK * BLOCK, hi), lo)
    b = tl.maximum(tl.minimum(full_hi // BLOCK * BLOCK, hi), a)
    return lo, a, b, hi


@triton.jit
def _key_blocks(p_first, p_last, S, W, BLOCK_N: tl.constexpr, CAUSAL: tl.constexpr, HAS_WINDOW: tl.constexpr):
    """Key blocks seen by queries at key positions [p_first, p_last] (see ``_split_blocks``)."""
    lo = p_first * 0
    full_lo = p_first * 0
    hi = p_first * 0 + S
    full_hi = p_first * 0 + S
    if HAS_WINDOW:
        lo = tl.maximum(p_first - W + 1, 0)
        full_lo = tl.maximum(p_last - W + 1, 0)
    if CAUSAL:
        hi = tl.minimum(p_last + 1, S)
        full_hi = tl.minimum(p_first + 1, S)
    return _split_blocks(lo, full_lo, full_hi, hi, BLOCK_N)


@triton.jit
def _query_blocks(n_first, n_last, n_full, T, S, W, BLOCK_M: tl.constexpr, CAUSAL: tl.constexpr,
                  HAS_WINDOW: tl.constexpr):
    """Query rows that see keys [n_first, n_last] (see ``_split_blocks``).

    ``n_full`` is False when the key block runs past S: then every query block is masked.
    """
    shift = S - T  # query row i sits at key position i + shift
    lo = n_first * 0
    full_lo = n_first * 0
    hi = n_first * 0 + T
    full_hi = n_first * 0 + T
    if CAUSAL:
        lo = tl.maximum(n_first - shift, 0)
        full_lo = tl.maximum(n_last - shift, 0)
    if HAS_WINDOW:
        hi = tl.maximum(tl.minimum(n_last + W - shift, T), 0)
        full_hi = tl.maximum(tl.minimum(n_first + W - shift, T), 0)
    full_hi = tl.where(n_full, full_hi, 0)
    return _split_blocks(lo, full_lo, full_hi, hi, BLOCK_M)


# ----------------------------------------------------------------------------- forward


@triton.jit
def _attn_fwd_blocks(b_acc, b_m, b_l, b_q, p_k0, p_v0, p_kb0, pos_m, start, end, S, W, stride_k, stride_v, qk_scale,
                     D, DV, BLOCK_N: tl.constexpr, BD: tl.constexpr, BDV: tl.constexpr, CAUSAL: tl.constexpr,
                     HAS_WINDOW: tl.constexpr, MASKED: tl.constexpr, HAS_KEY_BIAS: tl.constexpr,
                     PRECISION: tl.constexpr):
    """Online-softmax update over key blocks [start, end): b_acc [BM, BDV], b_m/b_l [BM], b_q [BM, BD]."""
    offs_d = tl.arange(0, BD)
    offs_dv = tl.arange(0, BDV)
    for start_n in range(start, end, BLOCK_N):
        offs_n = start_n + tl.arange(0, BLOCK_N)
        # [BD, BN] keys (transposed) and [BN, BDV] values
        p_k = p_k0 + offs_n[None, :] * stride_k + offs_d[:, None]
        b_k = tl.load(p_k, mask=(offs_n[None, :] < S) & (offs_d[:, None] < D), other=0.0)
        p_v = p_v0 + offs_n[:, None] * stride_v + offs_dv[None, :]
        b_v = tl.load(p_v, mask=(offs_n[:, None] < S) & (offs_dv[None, :] < DV), other=0.0)
        # [BM, BN] scores in log2 units
        b_s = tl.dot(b_q, b_k, input_precision=PRECISION) * qk_scale
        if MASKED:
            b_s = tl.where(_visible(pos_m[:, None], offs_n[None, :], S, W, CAUSAL, HAS_WINDOW), b_s, float("-inf"))
        if HAS_KEY_BIAS:
            b_s += tl.load(p_kb0 + offs_n, mask=offs_n < S, other=0.0)[None, :]
        b_m_new = tl.maximum(b_m, tl.max(b_s, 1))
        b_p = tl.exp2(b_s - b_m_new[:, None])
        b_alpha = tl.exp2(b_m - b_m_new)
        b_l = b_l * b_alpha + tl.sum(b_p, 1)
        b_acc = b_acc * b_alpha[:, None] + tl.dot(b_p.to(b_v.dtype), b_v, input_precision=PRECISION)
        b_m = b_m_new
    return b_acc, b_m, b_l


@triton.jit
def _attn_fwd_kernel(q, k, v, sinks, kbias, o, lse, qk_scale, T, S, H, HKV, W, M, D, DV,
                     BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BD: tl.constexpr, BDV: tl.constexpr,
                     BSINK: tl.constexpr, CAUSAL: tl.constexpr, HAS_WINDOW: tl.constexpr, HAS_SINKS: tl.constexpr,
                     HAS_KEY_BIAS: tl.constexpr, PRECISION: tl.constexpr):
    """One program per (query block, batch x head). q [B,T,H,D], k [B,S,HKV,D], v [B,S,HKV,DV] -> o, lse [B,H,T].

    ``kbias`` [B, S] float32: each key's additive score (read only with HAS_KEY_BIAS).
    """
    i_m, i_bh = tl.program_id(0), tl.program_id(1)
    i_b, i_h = i_bh // H, i_bh % H
    i_hkv = i_h // (H // HKV)
    i_b64 = i_b.to(tl.int64)

    offs_m = i_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BD)
    offs_dv = tl.arange(0, BDV)
    # key position of each query row; padded rows repeat the last query so no row is ever empty
    pos_m = tl.minimum(offs_m, T - 1) + (S - T)

    p_q = q + (i_b64 * T + offs_m[:, None]) * H * D + i_h * D + offs_d[None, :]
    b_q = tl.load(p_q, mask=(offs_m[:, None] < T) & (offs_d[None, :] < D), other=0.0)  # [BM, BD]
    stride_k, stride_v = HKV * D, HKV * DV  # key/value row strides
    p_k0 = k + i_b64 * S * stride_k + i_hkv * D
    p_v0 = v + i_b64 * S * stride_v + i_hkv * DV
    p_kb0 = kbias + i_b64 * S

    # running max starts at the largest sink logit (or "very negative": finite, so a row whose
    # first blocks are all masked gives exp2(-inf - m) = 0 and never NaN)
    b_m = tl.full([BLOCK_M], -1.0e30, dtype=tl.float32)
    b_l = tl.zeros([BLOCK_M], dtype=tl.float32)
    if HAS_SINKS:
        offs_r = tl.arange(0, BSINK)
        b_t = tl.load(sinks + i_h * M + offs_r, mask=offs_r < M, other=float("-inf")).to(tl.float32) * _LOG2E
        b_t_max = tl.max(b_t, 0)
        b_m = b_m * 0.0 + b_t_max
        b_l = b_l + tl.sum(tl.exp2(b_t - b_t_max), 0)
    b_acc = tl.zeros([BLOCK_M, BDV], dtype=tl.float32)

    p_first = i_m * BLOCK_M + (S - T)
    p_last = tl.minimum(i_m * BLOCK_M + BLOCK_M, T) - 1 + (S - T)
    lo, a, b, hi = _key_blocks(p_first, p_last, S, W, BLOCK_N, CAUSAL, HAS_WINDOW)
    b_acc, b_m, b_l = _attn_fwd_blocks(b_acc, b_m, b_l, b_q, p_k0, p_v0, p_kb0, pos_m, lo, a, S, W, stride_k, stride_v,
                                       qk_scale, D, DV, BLOCK_N, BD, BDV, CAUSAL, HAS_WINDOW, True, HAS_KEY_BIAS,
                                       PRECISION)
    b_acc, b_m, b_l = _attn_fwd_blocks(b_acc, b_m, b_l, b_q, p_k0, p_v0, p_kb0, pos_m, a, b, S, W, stride_k, stride_v,
                                       qk_scale, D, DV, BLOCK_N, BD, BDV, CAUSAL, HAS_WINDOW, False, HAS_KEY_BIAS,
                                       PRECISION)
    b_acc, b_m, b_l = _attn_fwd_blocks(b_acc, b_m, b_l, b_q, p_k0, p_v0, p_kb0, pos_m, b, hi, S, W, stride_k, stride_v,
                                       qk_scale, D, DV, BLOCK_N, BD, BDV, CAUSAL, HAS_WINDOW, True, HAS_KEY_BIAS,
                                       PRECISION)

    b_o = b_acc / b_l[:, None]
    p_o = o + (i_b64 * T + offs_m[:, None]) * H * DV + i_h * DV + offs_dv[None, :]
    tl.store(p_o, b_o.to(p_o.dtype.element_ty), mask=(offs_m[:, None] < T) & (offs_dv[None, :] < DV))
    p_lse = lse + i_bh.to(tl.int64) * T + offs_m
    tl.store(p_lse, b_m + tl.log2(b_l), mask=offs_m < T)


# ----------------------------------------------------------------------------- backward


@triton.jit
def _attn_bwd_delta_kernel(o, do, delta, T, H, DV, BLOCK_M: tl.constexpr, BDV: tl.constexpr):
    """delta [B, H, T] = rowsum(dO * O) in float32."""
    i_m, i_bh = tl.program_id(0), tl.program_id(1)
    i_b, i_h = i_bh // H, i_bh % H
    offs_m = i_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_dv = tl.arange(0, BDV)
    offs = (i_b.to(tl.int64) * T + offs_m[:, None]) * H * DV + i_h * DV + offs_dv[None, :]
    mask = (offs_m[:, None] < T) & (offs_dv[None, :] < DV)
    b_o = tl.load(o + offs, mask=mask, other=0.0).to(tl.float32)
    b_do = tl.load(do + offs, mask=mask, other=0.0).to(tl.float32)
    tl.store(delta + i_bh.to(tl.int64) * T + offs_m, tl.sum(b_o * b_do, 1), mask=offs_m < T)


@triton.jit
def _attn_bwd_dq_blocks(b_dq, b_q, b_do, b_lse, b_delta, p_k0, p_v0, p_kb0, pos_m, start, end, S, W, stride_k,
                        stride_v, qk_scale, D, DV, BLOCK_N: tl.constexpr, BD: tl.constexpr, BDV: tl.constexpr,
                        CAUSAL: tl.constexpr, HAS_WINDOW: tl.constexpr, MASKED: tl.constexpr,
                        HAS_KEY_BIAS: tl.constexpr, PRECISION: tl.constexpr):
    """Accumulate b_dq [BM, BD] (unscaled) over key blocks [start, end)."""
    offs_d = tl.arange(0, BD)
    offs_dv = tl.arange(0, BDV)
    for start_n in range(start, end, BLOCK_N):
        offs_n = start_n + tl.arange(0, BLOCK_N)
        p_k = p_k0 + offs_n[:, None] * stride_k + offs_d[None, :]
        b_k = tl.load(p_k, mask=(offs_n[:, None] < S) & (offs_d[None, :] < D), other=0.0)  # [BN, BD]
        p_v = p_v0 + offs_n[None, :] * stride_v + offs_dv[:, None]
        b_vt = tl.load(p_v, mask=(offs_n[None, :] < S) & (offs_dv[:, None] < DV), other=0.0)  # [BDV, BN]
        b_s = tl.dot(b_q, tl.trans(b_k), input_precision=PRECISION) * qk_scale  # [BM, BN]
        if MASKED:
            b_s = tl.where(_visible(pos_m[:, None], offs_n[None, :], S, W, CAUSAL, HAS_WINDOW), b_s, float("-inf"))
        if HAS_KEY_BIAS:
            b_s += tl.load(p_kb0 + offs_n, mask=offs_n < S, other=0.0)[None, :]
        b_p = tl.exp2(b_s - b_lse[:, None])
        b_dp = tl.dot(b_do, b_vt, input_precision=PRECISION)  # [BM, BN]
        b_ds = b_p * (b_dp - b_delta[:, None])
        b_dq += tl.dot(b_ds.to(b_k.dtype), b_k, input_precision=PRECISION)
    return b_dq


@triton.jit
def _attn_bwd_dq_kernel(q, k, v, kbias, do, lse, delta, dq, scale, qk_scale, T, S, H, HKV, W, D, DV,
                        BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BD: tl.constexpr, BDV: tl.constexpr,
                        CAUSAL: tl.constexpr, HAS_WINDOW: tl.constexpr, HAS_KEY_BIAS: tl.constexpr,
                        PRECISION: tl.constexpr):
    """One program per (query block, batch x head): dq [B, T, H, D], walking the same key blocks as the forward."""
    i_m, i_bh = tl.program_id(0), tl.program_id(1)
    i_b, i_h = i_bh // H, i_bh % H
    i_hkv = i_h // (H // HKV)
    i_b64 = i_b.to(tl.int64)

    offs_m = i_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BD)
    offs_dv = tl.arange(0, BDV)
    pos_m = tl.minimum(offs_m, T - 1) + (S - T)
    mask_m = offs_m < T

    p_q = q + (i_b64 * T + offs_m[:, None]) * H * D + i_h * D + offs_d[None, :]
    b_q = tl.load(p_q, mask=mask_m[:, None] & (offs_d[None, :] < D), other=0.0)  # [BM, BD]
    p_do = do + (i_b64 * T + offs_m[:, None]) * H * DV + i_h * DV + offs_dv[None, :]
    b_do = tl.load(p_do, mask=mask_m[:, None] & (offs_dv[None, :] < DV), other=0.0)  # [BM, BDV]
    b_lse = tl.load(lse + i_bh.to(tl.int64) * T + offs_m, mask=mask_m, other=0.0)  # [BM]
    b_delta = tl.load(delta + i_bh.to(tl.int64) * T + offs_m, mask=mask_m, other=0.0)  # [BM]
    stride_k, stride_v = HKV * D, HKV * DV  # key/value row strides
    p_k0 = k + i_b64 * S * stride_k + i_hkv * D
    p_v0 = v + i_b64 * S * stride_v + i_hkv * DV
    p_kb0 = kbias + i_b64 * S

    b_dq = tl.zeros([BLOCK_M, BD], dtype=tl.float32)
    p_first = i_m * BLOCK_M + (S - T)
    p_last = tl.minimum(i_m * BLOCK_M + BLOCK_M, T) - 1 + (S - T)
    lo, a, b, hi = _key_blocks(p_first, p_last, S, W, BLOCK_N, CAUSAL, HAS_WINDOW)
    b_dq = _attn_bwd_dq_blocks(b_dq, b_q, b_do, b_lse, b_delta, p_k0, p_v0, p_kb0, pos_m, lo, a, S, W, stride_k,
                               stride_v, qk_scale, D, DV, BLOCK_N, BD, BDV, CAUSAL, HAS_WINDOW, True, HAS_KEY_BIAS,
                               PRECISION)
    b_dq = _attn_bwd_dq_blocks(b_dq, b_q, b_do, b_lse, b_delta, p_k0, p_v0, p_kb0, pos_m, a, b, S, W, stride_k,
                               stride_v, qk_scale, D, DV, BLOCK_N, BD, BDV, CAUSAL, HAS_WINDOW, False, HAS_KEY_BIAS,
                               PRECISION)
    b_dq = _attn_bwd_dq_blocks(b_dq, b_q, b_do, b_lse, b_delta, p_k0, p_v0, p_kb0, pos_m, b, hi, S, W, stride_k,
                               stride_v, qk_scale, D, DV, BLOCK_N, BD, BDV, CAUSAL, HAS_WINDOW, True, HAS_KEY_BIAS,
                               PRECISION)

    p_dq = dq + (i_b64 * T + offs_m[:, None]) * H * D + i_h * D + offs_d[None, :]
    tl.store(p_dq, (b_dq * scale).to(p_dq.dtype.element_ty), mask=mask_m[:, None] & (offs_d[None, :] < D))


@triton.jit
def _attn_bwd_dkdv_blocks(b_dk, b_dv, b_k, b_v, b_kb, p_q0, p_do0, p_lse0, p_delta0, offs_n, start, end, T, S, W,
                          stride_q, stride_do, qk_scale, D, DV, BLOCK_M: tl.constexpr, BD: tl.constexpr,
                          BDV: tl.constexpr, CAUSAL: tl.constexpr, HAS_WINDOW: tl.constexpr, MASKED: tl.constexpr,
                          HAS_KEY_BIAS: tl.constexpr, PRECISION: tl.constexpr):
    """Accumulate b_dk [BN, BD] (unscaled) and b_dv [BN, BDV] over query blocks [start, end) of one head.

    ``b_kb`` [BN] holds the block's additive key scores (used only with HAS_KEY_BIAS).
    """
    offs_d = tl.arange(0, BD)
    offs_dv = tl.arange(0, BDV)
    for start_m in range(start, end, BLOCK_M):
        offs_m = start_m + tl.arange(0, BLOCK_M)
        mask_m = offs_m < T
        b_q = tl.load(p_q0 + offs_m[:, None] * stride_q + offs_d[None, :],
                      mask=mask_m[:, None] & (offs_d[None, :] < D), other=0.0)  # [BM, BD]
        b_do = tl.load(p_do0 + offs_m[:, None] * stride_do + offs_dv[None, :],
                       mask=mask_m[:, None] & (offs_dv[None, :] < DV), other=0.0)  # [BM, BDV]
        b_lse = tl.load(p_lse0 + offs_m, mask=mask_m, other=0.0)
        b_delta = tl.load(p_delta0 + offs_m, mask=mask_m, other=0.0)
        b_st = tl.dot(b_k, tl.trans(b_q), input_precision=PRECISION) * qk_scale  # [BN, BM]
        if MASKED:
            vis = _visible(offs_m[None, :] + (S - T), offs_n[:, None], S, W, CAUSAL, HAS_WINDOW) & mask_m[None, :]
            b_st = tl.where(vis, b_st, float("-inf"))
        if HAS_KEY_BIAS:
            b_st += b_kb[:, None]
        b_pt = tl.exp2(b_st - b_lse[None, :])  # [BN, BM]
        b_dv += tl.dot(b_pt.to(b_do.dtype), b_do, input_precision=PRECISION)
        b_dpt = tl.dot(b_v, tl.trans(b_do), input_precision=PRECISION)  # [BN, BM]
        b_dst = b_pt * (b_dpt - b_delta[None, :])
        b_dk += tl.dot(b_dst.to(b_q.dtype), b_q, input_precision=PRECISION)
    return b_dk, b_dv


@triton.jit
def _attn_bwd_dkdv_kernel(q, k, v, kbias, do, lse, delta, dk, dv, scale, qk_scale, T, S, H, HKV, W, D, DV,
                          BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BD: tl.constexpr, BDV: tl.constexpr,
                          CAUSAL: tl.constexpr, HAS_WINDOW: tl.constexpr, HAS_KEY_BIAS: tl.constexpr,
                          PRECISION: tl.constexpr):
    """One program per (key block, batch x KV head): dk, dv summed over the query heads of the group."""
    i_n, i_bh = tl.program_id(0), tl.program_id(1)
    i_b, i_hkv = i_bh // HKV, i_bh % HKV
    G = H // HKV
    i_b64 = i_b.to(tl.int64)

    offs_n = i_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BD)
    offs_dv = tl.arange(0, BDV)
    mask_n = offs_n < S
    p_k = k + (i_b64 * S + offs_n[:, None]) * HKV * D + i_hkv * D + offs_d[None, :]
    b_k = tl.load(p_k, mask=mask_n[:, None] & (offs_d[None, :] < D), other=0.0)  # [BN, BD]
    p_v = v + (i_b64 * S + offs_n[:, None]) * HKV * DV + i_hkv * DV + offs_dv[None, :]
    b_v = tl.load(p_v, mask=mask_n[:, None] & (offs_dv[None, :] < DV), other=0.0)  # [BN, BDV]
    b_kb = tl.zeros([BLOCK_N], dtype=tl.float32)
    if HAS_KEY_BIAS:
        b_kb = tl.load(kbias + i_b64 * S + offs_n, mask=mask_n, other=0.0)

    b_dk = tl.zeros([BLOCK_N, BD], dtype=tl.float32)
    b_dv = tl.zeros([BLOCK_N, BDV], dtype=tl.float32)
    n_first = i_n * BLOCK_N
    n_last = tl.minimum(n_first + BLOCK_N, S) - 1
    lo, a, b, hi = _query_blocks(n_first, n_last, n_first + BLOCK_N <= S, T, S, W, BLOCK_M, CAUSAL, HAS_WINDOW)
    for g in range(G):
        i_h = i_hkv * G + g
        p_q0 = q + i_b64 * T * H * D + i_h * D
        p_do0 = do + i_b64 * T * H * DV + i_h * DV
        p_lse0 = lse + (i_b64 * H + i_h) * T
        p_delta0 = delta + (i_b64 * H + i_h) * T
        b_dk, b_dv = _attn_bwd_dkdv_blocks(b_dk, b_dv, b_k, b_v, b_kb, p_q0, p_do0, p_lse0, p_delta0, offs_n, lo, a,
                                           T, S, W, H * D, H * DV, qk_scale, D, DV, BLOCK_M, BD, BDV, CAUSAL,
                                           HAS_WINDOW, True, HAS_KEY_BIAS, PRECISION)
        b_dk, b_dv = _attn_bwd_dkdv_blocks(b_dk, b_dv, b_k, b_v, b_kb, p_q0, p_do0, p_lse0, p_delta0, offs_n, a, b,
                                           T, S, W, H * D, H * DV, qk_scale, D, DV, BLOCK_M, BD, BDV, CAUSAL,
                                           HAS_WINDOW, False, HAS_KEY_BIAS, PRECISION)
        b_dk, b_dv = _attn_bwd_dkdv_blocks(b_dk, b_dv, b_k, b_v, b_kb, p_q0, p_do0, p_lse0, p_delta0, offs_n, b, hi,
                                           T, S, W, H * D, H * DV, qk_scale, D, DV, BLOCK_M, BD, BDV, CAUSAL,
                                           HAS_WINDOW, True, HAS_KEY_BIAS, PRECISION)

    p_dk = dk + (i_b64 * S + offs_n[:, None]) * HKV * D + i_hkv * D + offs_d[None, :]
    tl.store(p_dk, (b_dk * scale).to(p_dk.dtype.element_ty), mask=mask_n[:, None] & (offs_d[None, :] < D))
    p_dv = dv + (i_b64 * S + offs_n[:, None]) * HKV * DV + i_hkv * DV + offs_dv[None, :]
    tl.store(p_dv, b_dv.to(p_dv.dtype.element_ty), mask=mask_n[:, None] & (offs_dv[None, :] < DV))


# ----------------------------------------------------------------------------- launchers


def _tiles(q: torch.Tensor, block_m: int | None, block_n: int | None, kind: str) -> tuple[int, int, int, int]:
    """(BLOCK_M, BLOCK_N, num_warps, num_stages): small fixed tiles under the interpreter, sm_90 tiles on CUDA.

    16-bit tiles compile without register spills for head dims 64 and 128; float32 (3xTF32
    products) uses small tiles so it fits in shared memory (``compile_check`` reports both).
    """
    head_dim = q.shape[-1]
    if interpreting():
        bm, bn, warps, stages = 16, 16, 1, 1
    elif q.dtype == torch.float32:
        bm, bn, warps, stages = 32, 32, 4, 2
    elif kind == "fwd":
        bm, bn, warps, stages = 128, 64, 8, 3
    elif kind == "dq":
        bm, bn, warps, stages = (128, 64, 8, 2) if head_dim > 64 else (64, 64, 4, 3)
    else:  # dkdv: BLOCK_N keys stay resident, BLOCK_M query rows stream past
        bm, bn, warps, stages = 32, 64, 8, 2
    return block_m or bm, block_n or bn, warps, stages


def _shapes(q, k, v, causal, window, scale, key_mask):
    """Sizes, the softmax scale, the compile-time flags shared by every launch and the key scores (or a placeholder)."""
    B, T, H, D = q.shape
    S, HKV, DV = k.shape[1], k.shape[2], v.shape[3]
    scale = softmax_scale(D, scale)
    flags = dict(CAUSAL=bool(causal), HAS_WINDOW=window is not None, HAS_KEY_BIAS=key_mask is not None,
                 PRECISION=dot_precision(q.dtype))
    kbias = q if key_mask is None else key_bias(key_mask, torch.float32).contiguous()  # placeholder when absent
    return B, T, H, D, S, HKV, DV, scale, flags, kbias


def softmax_attention_fwd(q, k, v, sink_logits=None, *, causal=True, window=None, scale=None, block_m=None,
                          block_n=None, key_mask=None):
    """Forward launch: returns (o [B, T, H, DV] in q's dtype, lse [B, H, T] float32, base 2)."""
    q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
    B, T, H, D, S, HKV, DV, scale, flags, kbias = _shapes(q, k, v, causal, window, scale, key_mask)
    o = torch.empty((B, T, H, DV), dtype=q.dtype, device=q.device)
    lse = torch.empty((B, H, T), dtype=torch.float32, device=q.device)
    sinks = sink_logits.contiguous() if sink_logits is not None else q  # placeholder pointer when absent
    m = sink_logits.shape[1] if sink_logits is not None else 0
    bm, bn, warps, stages = _tiles(q, block_m, block_n, "fwd")
    grid = (triton.cdiv(T, bm), B * H)
    _attn_fwd_kernel[grid](
        q, k, v, sinks, kbias, o, lse, scale * LOG2E, T, S, H, HKV, window or 0, m, D, DV,
        BLOCK_M=bm, BLOCK_N=bn, BD=feature_block(D), BDV=feature_block(DV), BSINK=max(2, triton.next_power_of_2(m)),
        HAS_SINKS=sink_logits is not None, num_warps=warps, num_stages=stages, **flags,
    )
    return o, lse


def softmax_attention_bwd(do, q, k, v, o, lse, sink_logits=None, *, causal=True, window=None, scale=None,
                          block_m=None, block_n=None, dlse=None, key_mask=None):
    """Backward launch: returns (dq, dk, dv, d sink_logits or None).

    ``dlse`` [B, H, T] is the gradient of the natural-log normaliser when the caller used it:
    since d lse_i / d s_ij = p_ij, it enters every formula exactly as ``-dlse`` added to
    delta_i = rowsum(dO_i ∘ O_i), so the kernels need no change.
    """
    do, q, k, v = do.contiguous(), q.contiguous(), k.contiguous(), v.contiguous()
    B, T, H, D, S, HKV, DV, scale, flags, kbias = _shapes(q, k, v, causal, window, scale, key_mask)
    BD, BDV = feature_block(D), feature_block(DV)

    delta = torch.empty((B, H, T), dtype=torch.float32, device=q.device)
    bm, _, warps, _ = _tiles(q, block_m, block_n, "fwd")
    _attn_bwd_delta_kernel[(triton.cdiv(T, bm), B * H)](o, do, delta, T, H, DV, BLOCK_M=bm, BDV=BDV, num_warps=warps)
    if dlse is not None:
        delta = delta - dlse.float()

    dq = torch.empty_like(q)
    bm, bn, warps, stages = _tiles(q, block_m, block_n, "dq")
    _attn_bwd_dq_kernel[(triton.cdiv(T, bm), B * H)](
        q, k, v, kbias, do, lse, delta, dq, scale, scale * LOG2E, T, S, H, HKV, window or 0, D, DV,
        BLOCK_M=bm, BLOCK_N=bn, BD=BD, BDV=BDV, num_warps=warps, num_stages=stages, **flags,
    )
    dk = torch.empty_like(k)
    dv = torch.empty_like(v)
    bm, bn, warps, stages = _tiles(q, block_m, block_n, "dkdv")
    _attn_bwd_dkdv_kernel[(triton.cdiv(S, bn), B * HKV)](
        q, k, v, kbias, do, lse, delta, dk, dv, scale, scale * LOG2E, T, S, H, HKV, window or 0, D, DV,
        BLOCK_M=bm, BLOCK_N=bn, BD=BD, BDV=BDV, num_warps=warps, num_stages=stages, **flags,
    )

    dsinks = None
    if sink_logits is not None:
        # dt_r = -sum_{b,i} delta_i exp(t_r - lse_i); lse is base 2: exp(t - lse) = exp2(t log2 e - lse2)
        t2 = sink_logits.float().view(1, H, 1, -1) * LOG2E
        weights = torch.exp2(t2 - lse.unsqueeze(-1))  # [B, H, T, m]
        dsinks = -(delta.unsqueeze(-1) * weights).sum(dim=(0, 2)).to(sink_logits.dtype)
    return dq, dk, dv, dsinks


class _SoftmaxAttentionFunction(torch.autograd.Function):
    """Outputs (o, lse): lse [B, T, H] float32 in natural log, for callers that merge normalisers."""

    @staticmethod
    def forward(ctx, q, k, v, sink_logits, causal, window, scale, key_mask):
        o, lse = softmax_attention_fwd(q, k, v, sink_logits, causal=causal, window=window, scale=scale,
                                       key_mask=key_mask)
        ctx.save_for_backward(q, k, v, sink_logits, o, lse)
        ctx.options = dict(causal=causal, window=window, scale=scale, key_mask=key_mask)
        ctx.set_materialize_grads(False)
        return o, (lse * LN2).transpose(1, 2)

    @staticmethod
    def backward(ctx, do, dlse):
        q, k, v, sink_logits, o, lse = ctx.saved_tensors
        do = torch.zeros_like(o) if do is None else do
        dlse = None if dlse is None else dlse.transpose(1, 2)
        dq, dk, dv, dsinks = softmax_attention_bwd(do, q, k, v, o, lse, sink_logits, dlse=dlse, **ctx.options)
        return dq, dk, dv, dsinks, None, None, None, None


def softmax_attention(q, k, v, *, causal=True, window=None, sink_logits=None, scale=None, return_lse=False,
                      key_mask=None):
    """q [B, T, H, D], k [B, S, Hkv, D], v [B, S, Hkv, Dv] -> [B, T, H, Dv]; differentiable (incl. sinks).

    With ``return_lse`` also the natural-log normaliser [B, T, H] (float32, differentiable);
    ``key_mask`` [B, S] bool hides padded keys.
    """
    check_device(q, k, v, sink_logits)
    o, lse = _SoftmaxAttentionFunction.apply(q, k, v, sink_logits, causal, window, scale, key_mask)
    return (o, lse) if return_lse else o
