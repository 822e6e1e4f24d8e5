"""Chunked scalar-gated linear attention with normaliser in Triton, forward and backward.

    S_t = γ_t S_{t-1} + k_t v_tᵀ,  z_t = γ_t z_{t-1} + k_t,  o_t = q_tᵀ S_t / (q_tᵀ z_t + eps)

The kernels compute the numerator q_tᵀ S_t and the normaliser q_tᵀ z_t (z is S for a
value column of ones, carried beside it as a K-vector); the division is left to PyTorch
autograd. Chunked form (chunk of BT tokens, b = cumulative log-gate *within* the chunk,
float32; h, z the state entering the chunk):

    num_i = e^{b_i} q_iᵀ h + Σ_{j<=i} e^{b_i - b_j} (q_i·k_j) v_j,   den_i = the same with v_j = 1, h = z
    h'    = e^{b_last} h + Σ_j e^{b_last - b_j} k_j v_jᵀ,           z' = the same with v_j = 1

Every exponent is <= 0 (the pair mask is applied before the exponential), and all
products accumulate in float32. Backward, with (dh, dz) the gradient of the state leaving
the chunk and (do, dden) those of (num, den):

    dq_i = e^{b_i} (h do_i + dden_i z) + Σ_{j<=i} e^{b_i - b_j} (do_i·v_j + dden_i) k_j
    dk_j = e^{b_last - b_j} (dh v_j + dz) + Σ_{i>=j} e^{b_i - b_j} (do_i·v_j + dden_i) q_i
    dv_j = e^{b_last - b_j} dhᵀ k_j + Σ_{i>=j} e^{b_i - b_j} (q_i·k_j) do_i

and for the gate, with B_t the cumulative log-gate over the whole sequence,
dB_t = q_t·dq_t − k_t·dk_t (+ <dS_T, S_T> + <dz_T, z_T> at the last token), and
d log γ = reverse cumulative sum of dB.

Kernels: ``fwd_h`` (states entering each chunk, sequential over chunks), ``fwd_o``,
``bwd_dh`` (state gradients, sequential backwards), ``bwd_dqk`` and ``bwd_dv``.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from lizard_bench.kernels.state import GLAState
from lizard_bench.kernels.triton_backend.utils import check_device, dot_precision, feature_block

CHUNK_SIZE = 64


# ----------------------------------------------------------------------------- forward


@triton.jit
def _gla_fwd_h_kernel(k, v, b, h, z, h0, z0, ht, zt, T, H, HK, HV, K, V, NT, BT: tl.constexpr, BK: tl.constexpr,
                      BV: tl.constexpr, USE_INITIAL_STATE: tl.constexpr, STORE_FINAL_STATE: tl.constexpr,
                      PRECISION: tl.constexpr):
    """One program per (K tile, V tile, batch x head): h [B, NT, H, K, V], z [B, NT, H, K] entering each chunk."""
    i_k, i_v, i_bh = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    i_b, i_h = i_bh // H, i_bh % H
    i_hk, i_hv = i_h // (H // HK), i_h // (H // HV)  # the key and value heads query head i_h reads
    i_b64 = i_b.to(tl.int64)
    offs_k = i_k * BK + tl.arange(0, BK)
    offs_v = i_v * BV + tl.arange(0, BV)
    mask_k = offs_k < K
    mask_kv = mask_k[:, None] & (offs_v[None, :] < V)
    offs_kv = offs_k[:, None] * V + offs_v[None, :]
    mask_z = offs_k < tl.where(i_v == 0, K, 0)  # one V tile writes the normaliser state

    b_h = tl.zeros([BK, BV], dtype=tl.float32)
    b_z = tl.zeros([BK], dtype=tl.float32)
    if USE_INITIAL_STATE:
        b_h += tl.load(h0 + i_bh.to(tl.int64) * K * V + offs_kv, mask=mask_kv, other=0.0)
        b_z += tl.load(z0 + i_bh.to(tl.int64) * K + offs_k, mask=mask_k, other=0.0)
    for i_t in range(NT):
        p_h = h + ((i_b64 * NT + i_t) * H + i_h) * K * V + offs_kv
        tl.store(p_h, b_h.to(p_h.dtype.element_ty), mask=mask_kv)
        tl.store(z + ((i_b64 * NT + i_t) * H + i_h) * K + offs_k, b_z, mask=mask_z)
        offs_t = i_t * BT + tl.arange(0, BT)
        mask_t = offs_t < T
        p_k = k + ((i_b64 * T + offs_t[None, :]) * HK + i_hk) * K + offs_k[:, None]
        b_k = tl.load(p_k, mask=mask_t[None, :] & mask_k[:, None], other=0.0)  # [BK, BT]
        p_v = v + ((i_b64 * T + offs_t[:, None]) * HV + i_hv) * V + offs_v[None, :]
        b_v = tl.load(p_v, mask=mask_t[:, None] & (offs_v[None, :] < V), other=0.0)  # [BT, BV]
        b_b = tl.load(b + (i_b64 * T + offs_t) * H + i_h, mask=mask_t, other=0.0)  # [BT]
        b_last = tl.load(b + (i_b64 * T + tl.minimum(i_t * BT + BT, T) - 1) * H + i_h)
        b_kd = b_k.to(tl.float32) * tl.exp(b_last - b_b)[None, :]  # [BK, BT]
        b_h = b_h * tl.exp(b_last) + tl.dot(b_kd.to(b_v.dtype), b_v, input_precision=PRECISION)
        b_z = b_z * tl.exp(b_last) + tl.sum(b_kd, 1)
    if STORE_FINAL_STATE:
        tl.store(ht + i_bh.to(tl.int64) * K * V + offs_kv, b_h, mask=mask_kv)
        tl.store(zt + i_bh.to(tl.int64) * K + offs_k, b_z, mask=mask_z)


@triton.jit
def _gla_fwd_o_kernel(q, k, v, b, h, z, o, den, T, H, HK, HV, K, V, NT, BT: tl.constexpr, BK: tl.constexpr,
                      BV: tl.constexpr, PRECISION: tl.constexpr):
    """One program per (V tile, chunk, batch x head): numerator o [B, T, H, V] and den [B, T, H], float32."""
    i_v, i_t, i_bh = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    i_b, i_h = i_bh // H, i_bh % H
    i_hk, i_hv = i_h // (H // HK), i_h // (H // HV)
    i_b64 = i_b.to(tl.int64)
    offs_t = i_t * BT + tl.arange(0, BT)
    offs_v = i_v * BV + tl.arange(0, BV)
    mask_t = offs_t < T

    b_o = tl.zeros([BT, BV], dtype=tl.float32)
    b_A = tl.zeros([BT, BT], dtype=tl.float32)
    b_qz = tl.zeros([BT], dtype=tl.float32)
    for i_k in range(tl.cdiv(K, BK)):
        offs_k = i_k * BK + tl.arange(0, BK)
        mask_k = offs_k < K
        p_q = q + ((i_b64 * T + offs_t[:, None]) * H + i_h) * K + offs_k[None, :]
        b_q = tl.load(p_q, mask=mask_t[:, None] & mask_k[None, :], other=0.0)  # [BT, BK]
        p_k = k + ((i_b64 * T + offs_t[None, :]) * HK + i_hk) * K + offs_k[:, None]
        b_k = tl.load(p_k, mask=mask_t[None, :] & mask_k[:, None], other=0.0)  # [BK, BT]
        p_h = h + ((i_b64 * NT + i_t) * H + i_h) * K * V + offs_k[:, None] * V + offs_v[None, :]
        b_h = tl.load(p_h, mask=mask_k[:, None] & (offs_v[None, :] < V), other=0.0)  # [BK, BV]
        b_z = tl.load(z + ((i_b64 * NT + i_t) * H + i_h) * K + offs_k, mask=mask_k, other=0.0)  # [BK]
        b_o += tl.dot(b_q, b_h.to(b_q.dtype), input_precision=PRECISION)
        b_A += tl.dot(b_q, b_k, input_precision=PRECISION)
        b_qz += tl.sum(b_q.to(tl.float32) * b_z[None, :], 1)

    b_b = tl.load(b + (i_b64 * T + offs_t) * H + i_h, mask=mask_t, other=0.0)  # [BT]
    causal = offs_t[:, None] >= offs_t[None, :]
    b_A = b_A * tl.exp(tl.where(causal, b_b[:, None] - b_b[None, :], float("-inf")))  # [BT, BT]
    p_v = v + ((i_b64 * T + offs_t[:, None]) * HV + i_hv) * V + offs_v[None, :]
    b_v = tl.load(p_v, mask=mask_t[:, None] & (offs_v[None, :] < V), other=0.0)  # [BT, BV]
    b_o = b_o * tl.exp(b_b)[:, None] + tl.dot(b_A.to(b_v.dtype), b_v, input_precision=PRECISION)
    p_o = o + ((i_b64 * T + offs_t[:, None]) * H + i_h) * V + offs_v[None, :]
    tl.store(p_o, b_o.to(p_o.dtype.element_ty), mask=mask_t[:, None] & (offs_v[None, :] < V))
    b_den = b_qz * tl.exp(b_b) + tl.sum(b_A, 1)
    tl.store(den + (i_b64 * T + offs_t) * H + i_h, b_den, mask=offs_t < tl.where(i_v == 0, T, 0))  # one V tile


# ----------------------------------------------------------------------------- backward


@triton.jit
def _gla_bwd_dh_kernel(q, do, dden, b, dh, dz, dht, dzt, dh0, dz0, T, H, K, V, NT, BT: tl.constexpr,
                       BK: tl.constexpr, BV: tl.constexpr, USE_FINAL_GRAD: tl.constexpr,
                       STORE_INITIAL_GRAD: tl.constexpr, PRECISION: tl.constexpr):
    """One program per (K tile, V tile, batch x head): dh [B, NT, H, K, V], dz [B, NT, H, K] of the state
    leaving each chunk."""
    i_k, i_v, i_bh = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    i_b, i_h = i_bh // H, i_bh % H
    i_b64 = i_b.to(tl.int64)
    offs_k = i_k * BK + tl.arange(0, BK)
    offs_v = i_v * BV + tl.arange(0, BV)
    mask_k = offs_k < K
    mask_kv = mask_k[:, None] & (offs_v[None, :] < V)
    offs_kv = offs_k[:, None] * V + offs_v[None, :]
    mask_z = offs_k < tl.where(i_v == 0, K, 0)  # one V tile writes dz

    b_dh = tl.zeros([BK, BV], dtype=tl.float32)
    b_dz = tl.zeros([BK], dtype=tl.float32)
    if USE_FINAL_GRAD:
        b_dh += tl.load(dht + i_bh.to(tl.int64) * K * V + offs_kv, mask=mask_kv, other=0.0)
        b_dz += tl.load(dzt + i_bh.to(tl.int64) * K + offs_k, mask=mask_k, other=0.0)
    for i_rev in range(NT):
        i_t = NT - 1 - i_rev
        p_dh = dh + ((i_b64 * NT + i_t) * H + i_h) * K * V + offs_kv
        tl.store(p_dh, b_dh.to(p_dh.dtype.element_ty), mask=mask_kv)
        tl.store(dz + ((i_b64 * NT + i_t) * H + i_h) * K + offs_k, b_dz, mask=mask_z)
        offs_t = i_t * BT + tl.arange(0, BT)
        mask_t = offs_t < T
        p_q = q + ((i_b64 * T + offs_t[None, :]) * H + i_h) * K + offs_k[:, None]
        b_q = tl.load(p_q, mask=mask_t[None, :] & mask_k[:, None], other=0.0)  # [BK, BT]
        p_do = do + ((i_b64 * T + offs_t[:, None]) * H + i_h) * V + offs_v[None, :]
        b_do = tl.load(p_do, mask=mask_t[:, None] & (offs_v[None, :] < V), other=0.0).to(b_q.dtype)  # [BT, BV]
        b_dden = tl.load(dden + (i_b64 * T + offs_t) * H + i_h, mask=mask_t, other=0.0)  # [BT]
        b_b = tl.load(b + (i_b64 * T + offs_t) * H + i_h, mask=mask_t, other=0.0)  # [BT]
        b_last = tl.load(b + (i_b64 * T + tl.minimum(i_t * BT + BT, T) - 1) * H + i_h)
        b_qd = b_q.to(tl.float32) * tl.exp(b_b)[None, :]  # [BK, BT]
        b_dh = b_dh * tl.exp(b_last) + tl.dot(b_qd.to(b_q.dtype), b_do, input_precision=PRECISION)
        b_dz = b_dz * tl.exp(b_last) + tl.sum(b_qd * b_dden[None, :], 1)
    if STORE_INITIAL_GRAD:
        tl.store(dh0 + i_bh.to(tl.int64) * K * V + offs_kv, b_dh, mask=mask_kv)
        tl.store(dz0 + i_bh.to(tl.int64) * K + offs_k, b_dz, mask=mask_z)


@triton.jit
def _gla_bwd_dqk_kernel(q, k, v, b, h, z, do, dden, dh, dz, dq, dk, db, B, T, H, HK, HV, K, V, NT,
                        BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr, PRECISION: tl.constexpr):
    """One program per (K tile, chunk, batch x head): dq, dk [B, T, H, K] and db [NK, B, T, H] (q·dq − k·dk).

    dk is per query head; grouped key heads are summed by the launcher."""
    i_k, i_t, i_bh = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    i_b, i_h = i_bh // H, i_bh % H
    i_hk, i_hv = i_h // (H // HK), i_h // (H // HV)
    i_b64 = i_b.to(tl.int64)
    offs_t = i_t * BT + tl.arange(0, BT)
    offs_k = i_k * BK + tl.arange(0, BK)
    mask_t = offs_t < T
    mask_k = offs_k < K
    mask_tk = mask_t[:, None] & mask_k[None, :]
    p_q = q + ((i_b64 * T + offs_t[:, None]) * H + i_h) * K + offs_k[None, :]
    b_q = tl.load(p_q, mask=mask_tk, other=0.0)  # [BT, BK]
    p_k = k + ((i_b64 * T + offs_t[:, None]) * HK + i_hk) * K + offs_k[None, :]
    b_k = tl.load(p_k, mask=mask_tk, other=0.0)  # [BT, BK]
    offs_state = ((i_b64 * NT + i_t) * H + i_h) * K

    # the normaliser's column of ones: its output gradient is dden, its state z and dz
    b_dden = tl.load(dden + (i_b64 * T + offs_t) * H + i_h, mask=mask_t, other=0.0)  # [BT]
    b_z = tl.load(z + offs_state + offs_k, mask=mask_k, other=0.0)  # [BK]
    b_dz = tl.load(dz + offs_state + offs_k, mask=mask_k, other=0.0)  # [BK]
    b_dA = tl.zeros([BT, BT], dtype=tl.float32) + b_dden[:, None]  # [BT, BT]: do_i·v_j (+ dden_i · 1)
    b_dq = b_dden[:, None] * b_z[None, :]  # [BT, BK]
    b_dk = tl.zeros([BT, BK], dtype=tl.float32) + b_dz[None, :]  # [BT, BK]
    for i_v in range(tl.cdiv(V, BV)):
        offs_v = i_v * BV + tl.arange(0, BV)
        mask_tv = mask_t[:, None] & (offs_v[None, :] < V)
        p_v = v + ((i_b64 * T + offs_t[:, None]) * HV + i_hv) * V + offs_v[None, :]
        b_v = tl.load(p_v, mask=mask_tv, other=0.0)  # [BT, BV]
        p_do = do + ((i_b64 * T + offs_t[:, None]) * H + i_h) * V + offs_v[None, :]
        b_do = tl.load(p_do, mask=mask_tv, other=0.0).to(b_v.dtype)  # [BT, BV]
        # h and dh of this chunk, loaded transposed: [BV, BK]
        offs_hkv = offs_state * V + offs_k[None, :] * V + offs_v[:, None]
        mask_hkv = mask_k[None, :] & (offs_v[:, None] < V)
        b_ht = tl.load(h + offs_hkv, mask=mask_hkv, other=0.0).to(b_v.dtype)
        b_dht = tl.load(dh + offs_hkv, mask=mask_hkv, other=0.0).to(b_v.dtype)
        b_dA += tl.dot(b_do, tl.trans(b_v), input_precision=PRECISION)
        b_dq += tl.dot(b_do, b_ht, input_precision=PRECISION)
        b_dk += tl.dot(b_v, b_dht, input_precision=PRECISION)

    b_b = tl.load(b + (i_b64 * T + offs_t) * H + i_h, mask=mask_t, other=0.0)  # [BT]
    b_last = tl.load(b + (i_b64 * T + tl.minimum(i_t * BT + BT, T) - 1) * H + i_h)
    causal = offs_t[:, None] >= offs_t[None, :]
    b_dA = b_dA * tl.exp(tl.where(causal, b_b[:, None] - b_b[None, :], float("-inf")))
    b_dq = b_dq * tl.exp(b_b)[:, None] + tl.dot(b_dA.to(b_k.dtype), b_k, input_precision=PRECISION)
    b_dk = b_dk * tl.exp(b_last - b_b)[:, None] + tl.dot(tl.trans(b_dA).to(b_q.dtype), b_q,
                                                          input_precision=PRECISION)
    p_dq = dq + ((i_b64 * T + offs_t[:, None]) * H + i_h) * K + offs_k[None, :]
    tl.store(p_dq, b_dq.to(p_dq.dtype.element_ty), mask=mask_tk)
    p_dk = dk + ((i_b64 * T + offs_t[:, None]) * H + i_h) * K + offs_k[None, :]
    tl.store(p_dk, b_dk.to(p_dk.dtype.element_ty), mask=mask_tk)
    b_db = tl.sum(b_dq * b_q.to(tl.float32), 1) - tl.sum(b_dk * b_k.to(tl.float32), 1)  # [BT]
    tl.store(db + ((i_k * B + i_b64) * T + offs_t) * H + i_h, b_db, mask=mask_t)


@triton.jit
def _gla_bwd_dv_kernel(q, k, b, do, dh, dv, T, H, HK, K, V, NT, BT: tl.constexpr, BK: tl.constexpr,
                       BV: tl.constexpr, PRECISION: tl.constexpr):
    """One program per (V tile, chunk, batch x head): dv [B, T, H, V], per query head (grouped value heads
    are summed by the launcher)."""
    i_v, i_t, i_bh = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    i_b, i_h = i_bh // H, i_bh % H
    i_hk = i_h // (H // HK)
    i_b64 = i_b.to(tl.int64)
    offs_t = i_t * BT + tl.arange(0, BT)
    offs_v = i_v * BV + tl.arange(0, BV)
    mask_t = offs_t < T
    mask_tv = mask_t[:, None] & (offs_v[None, :] < V)

    b_dv = tl.zeros([BT, BV], dtype=tl.float32)
    b_At = tl.zeros([BT, BT], dtype=tl.float32)  # [j, i] = k_j·q_i
    for i_k in range(tl.cdiv(K, BK)):
        offs_k = i_k * BK + tl.arange(0, BK)
        mask_k = offs_k < K
        p_k = k + ((i_b64 * T + offs_t[:, None]) * HK + i_hk) * K + offs_k[None, :]
        b_k = tl.load(p_k, mask=mask_t[:, None] & mask_k[None, :], other=0.0)  # [BT, BK]
        p_q = q + ((i_b64 * T + offs_t[None, :]) * H + i_h) * K + offs_k[:, None]
        b_qt = tl.load(p_q, mask=mask_t[None, :] & mask_k[:, None], other=0.0)  # [BK, BT]
        p_dh = dh + ((i_b64 * NT + i_t) * H + i_h) * K * V + offs_k[:, None] * V + offs_v[None, :]
        b_dh = tl.load(p_dh, mask=mask_k[:, None] & (offs_v[None, :] < V), other=0.0)  # [BK, BV]
        b_At += tl.dot(b_k, b_qt, input_precision=PRECISION)
        b_dv += tl.dot(b_k, b_dh.to(b_k.dtype), input_precision=PRECISION)

    b_b = tl.load(b + (i_b64 * T + offs_t) * H + i_h, mask=mask_t, other=0.0)  # [BT]
    b_last = tl.load(b + (i_b64 * T + tl.minimum(i_t * BT + BT, T) - 1) * H + i_h)
    causal_t = offs_t[None, :] >= offs_t[:, None]  # query i (column) at or after key j (row)
    b_At = b_At * tl.exp(tl.where(causal_t, b_b[None, :] - b_b[:, None], float("-inf")))
    p_do = do + ((i_b64 * T + offs_t[:, None]) * H + i_h) * V + offs_v[None, :]
    b_do = tl.load(p_do, mask=mask_tv, other=0.0).to(dv.dtype.element_ty)  # [BT, BV]
    b_dv = b_dv * tl.exp(b_last - b_b)[:, None] + tl.dot(b_At.to(b_do.dtype), b_do, input_precision=PRECISION)
    p_dv = dv + ((i_b64 * T + offs_t[:, None]) * H + i_h) * V + offs_v[None, :]
    tl.store(p_dv, b_dv.to(p_dv.dtype.element_ty), mask=mask_tv)


# ----------------------------------------------------------------------------- launchers


def _tiles(kernel: str, K: int, V: int, chunk_size: int | None) -> tuple[int, int, int, int]:
    """(BT, BK, BV, num_warps) for one kernel; chosen so nothing spills on sm_90 (see ``compile_check``).

    The sequential state kernels (``h``, ``dh``) keep small V tiles for parallelism; the
    per-chunk kernels (``o``, ``dv``) cover V <= 128 in one tile so q kᵀ is formed once.
    """
    BT, BK = chunk_size or CHUNK_SIZE, min(64, feature_block(K))
    if kernel in ("h", "dh"):
        return BT, BK, min(64, feature_block(V)), 4
    if kernel in ("o", "dv"):
        return BT, BK, min(128, feature_block(V)), 8
    return BT, BK, min(64, feature_block(V)), 8  # dqk


def chunk_local_cumsum(log_gate: torch.Tensor, chunk_size: int) -> torch.Tensor:
    """b [B, T, H] float32: cumulative sum of the log-gates restarted at every chunk."""
    B, T, H = log_gate.shape
    NT = triton.cdiv(T, chunk_size)
    g = torch.nn.functional.pad(log_gate.float(), (0, 0, 0, NT * chunk_size - T))
    return g.view(B, NT, chunk_size, H).cumsum(2).view(B, NT * chunk_size, H)[:, :T].contiguous()


def chunk_gla_fwd_h(k, v, b, initial_state, output_final_state, chunk_size):
    """States entering each chunk, h [B, NT, H, K, V] (input dtype) and z [B, NT, H, K] (float32),
    and the final state (S, z) in float32, or None."""
    B, T, HK, K = k.shape
    H, HV, V = b.shape[2], v.shape[2], v.shape[-1]
    BT, BK, BV, warps = _tiles("h", K, V, chunk_size)
    NT = triton.cdiv(T, BT)
    h = torch.empty((B, NT, H, K, V), dtype=k.dtype, device=k.device)
    z = torch.empty((B, NT, H, K), dtype=torch.float32, device=k.device)
    final = None
    if output_final_state:
        final = (torch.empty((B, H, K, V), dtype=torch.float32, device=k.device),
                 torch.empty((B, H, K), dtype=torch.float32, device=k.device))
    h0, z0 = initial_state if initial_state is not None else (h, z)  # placeholders when absent
    ht, zt = final if final is not None else (h, z)
    grid = (triton.cdiv(K, BK), triton.cdiv(V, BV), B * H)
    _gla_fwd_h_kernel[grid](
        k, v, b, h, z, h0, z0, ht, zt, T, H, HK, HV, K, V, NT, BT=BT, BK=BK, BV=BV,
        USE_INITIAL_STATE=initial_state is not None, STORE_FINAL_STATE=final is not None,
        PRECISION=dot_precision(k.dtype), num_warps=warps,
    )
    return h, z, final


def chunk_gla_fwd(q, k, v, log_gate, initial_state=None, output_final_state=False, chunk_size=None):
    """Numerator [B, T, H, V] and normaliser [B, T, H] (both float32), and the final (S, z) or None.

    ``initial_state`` is a pair (S [B, H, K, V], z [B, H, K]) or None.
    """
    q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
    if initial_state is not None:
        initial_state = tuple(x.float().contiguous() for x in initial_state)
    B, T, H, K = q.shape
    V = v.shape[-1]
    BT, BK, BV, warps = _tiles("o", K, V, chunk_size)
    b = chunk_local_cumsum(log_gate, BT)
    h, z, final = chunk_gla_fwd_h(k, v, b, initial_state, output_final_state, BT)
    num = torch.empty((B, T, H, V), dtype=torch.float32, device=q.device)
    den = torch.empty((B, T, H), dtype=torch.float32, device=q.device)
    grid = (triton.cdiv(V, BV), triton.cdiv(T, BT), B * H)
    _gla_fwd_o_kernel[grid](q, k, v, b, h, z, num, den, T, H, k.shape[2], v.shape[2], K, V, h.shape[1], BT=BT, BK=BK,
                            BV=BV,
                            PRECISION=dot_precision(q.dtype), num_warps=warps)
    return num, den, final


def chunk_gla_bwd(q, k, v, log_gate, initial_state, final_state, dnum, dden, dfinal, chunk_size=None,
                  initial_state_grad=True):
    """Gradients (dq, dk, dv, d log_gate, (dS0, dz0) or None) from those of (num, den, final state).

    ``final_state``/``dfinal`` are pairs (S, z) or None; the states are recomputed, not kept
    from the forward.
    """
    q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
    dnum, dden = dnum.contiguous(), dden.float().contiguous()
    if initial_state is not None:
        initial_state = tuple(x.float().contiguous() for x in initial_state)
    B, T, H, K = q.shape
    V = v.shape[-1]
    BT = chunk_size or CHUNK_SIZE
    NT = triton.cdiv(T, BT)
    precision = dot_precision(q.dtype)
    b = chunk_local_cumsum(log_gate, BT)
    h, z, _ = chunk_gla_fwd_h(k, v, b, initial_state, False, BT)

    dh = torch.empty((B, NT, H, K, V), dtype=q.dtype, device=q.device)
    dz = torch.empty((B, NT, H, K), dtype=torch.float32, device=q.device)
    dinitial = None
    if initial_state is not None and initial_state_grad:
        dinitial = (torch.empty((B, H, K, V), dtype=torch.float32, device=q.device),
                    torch.empty((B, H, K), dtype=torch.float32, device=q.device))
    dht, dzt = (x.float().contiguous() for x in dfinal) if dfinal is not None else (dh, dz)
    dh0, dz0 = dinitial if dinitial is not None else (dh, dz)
    _, BK, BV, warps = _tiles("dh", K, V, BT)
    _gla_bwd_dh_kernel[(triton.cdiv(K, BK), triton.cdiv(V, BV), B * H)](
        q, dnum, dden, b, dh, dz, dht, dzt, dh0, dz0, T, H, K, V, NT, BT=BT, BK=BK, BV=BV,
        USE_FINAL_GRAD=dfinal is not None, STORE_INITIAL_GRAD=dinitial is not None, PRECISION=precision,
        num_warps=warps,
    )
    # dk, dv per query head; grouped key/value heads sum theirs afterwards (in float32)
    HK, HV = k.shape[2], v.shape[2]
    dq = torch.empty_like(q)
    dk = torch.empty((B, T, H, K), dtype=k.dtype if HK == H else torch.float32, device=q.device)
    _, BK, BV, warps = _tiles("dqk", K, V, BT)
    NK = triton.cdiv(K, BK)
    db = torch.empty((NK, B, T, H), dtype=torch.float32, device=q.device)
    _gla_bwd_dqk_kernel[(NK, NT, B * H)](q, k, v, b, h, z, dnum, dden, dh, dz, dq, dk, db, B, T, H, HK, HV, K, V,
                                          NT, BT=BT, BK=BK, BV=BV, PRECISION=precision, num_warps=warps)
    dv = torch.empty((B, T, H, V), dtype=v.dtype if HV == H else torch.float32, device=q.device)
    _, BK, BV, warps = _tiles("dv", K, V, BT)
    _gla_bwd_dv_kernel[(triton.cdiv(V, BV), NT, B * H)](q, k, b, dnum, dh, dv, T, H, HK, K, V, NT,
                                                        BT=BT, BK=BK, BV=BV, PRECISION=precision, num_warps=warps)
    if HK != H:
        dk = dk.view(B, T, HK, H // HK, K).sum(3).to(k.dtype)
    if HV != H:
        dv = dv.view(B, T, HV, H // HV, V).sum(3).to(v.dtype)

    # dB_t = q_t·dq_t − k_t·dk_t, plus <dS_T, S_T> + <dz_T, z_T> at the last token; d log γ = reverse cumsum
    db = db.sum(0)
    if dfinal is not None:
        db[:, -1] += (dht * final_state[0]).sum(dim=(-2, -1)) + (dzt * final_state[1]).sum(dim=-1)
    dg = db.flip(1).cumsum(1).flip(1)
    return dq, dk, dv, dg.to(log_gate.dtype), dinitial


class _ChunkGLAFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, log_gate, S0, z0, output_final_state, chunk_size):
        initial = (S0, z0) if S0 is not None else None
        num, den, final = chunk_gla_fwd(q, k, v, log_gate, initial, output_final_state, chunk_size)
        St, zt = final if final is not None else (None, None)
        ctx.save_for_backward(q, k, v, log_gate, S0, z0, St, zt)
        ctx.chunk_size = chunk_size
        return num, den, St, zt

    @staticmethod
    def backward(ctx, dnum, dden, dSt, dzt):
        q, k, v, log_gate, S0, z0, St, zt = ctx.saved_tensors
        initial = (S0, z0) if S0 is not None else None
        final, dfinal = None, None
        if St is not None and (dSt is not None or dzt is not None):
            final = (St, zt)
            dfinal = (torch.zeros_like(St) if dSt is None else dSt, torch.zeros_like(zt) if dzt is None else dzt)
        dq, dk, dv, dg, dinitial = chunk_gla_bwd(
            q, k, v, log_gate, initial, final, dnum, dden, dfinal, ctx.chunk_size,
            initial_state_grad=ctx.needs_input_grad[4] or ctx.needs_input_grad[5],
        )
        dS0, dz0 = dinitial if dinitial is not None else (None, None)
        return dq, dk, dv, dg, dS0, dz0, None, None


def gated_linear_attention(q, k, v, log_gate, *, initial_state=None, output_final_state=False, eps=1e-6,
                           normalize=True, chunk_size=None):
    """q [B, T, H, K], k [B, T, Hk, K], v [B, T, Hv, V], log_gate [B, T, H] -> (o [B, T, H, V], GLAState or None).

    Hk and Hv divide H: query head h reads key head h // (H / Hk) and value head h // (H / Hv)
    straight from k and v (nothing is repeated); their gradients are summed over each group.

    o_t = q_tᵀ S_t / (q_tᵀ z_t + eps), or the numerator q_tᵀ S_t when ``normalize`` is False;
    differentiable in q, k, v, log_gate and the initial state.
    """
    check_device(q, k, v, log_gate)
    S0, z0 = (initial_state.S.float(), initial_state.z.float()) if initial_state is not None else (None, None)
    num, den, St, zt = _ChunkGLAFunction.apply(q, k, v, log_gate, S0, z0, output_final_state, chunk_size)
    o = num / (den.unsqueeze(-1) + eps) if normalize else num
    return o.to(v.dtype), (GLAState(S=St, z=zt) if output_final_state else None)
