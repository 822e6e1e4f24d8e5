"""Chunked scalar-gated linear attention with normaliser, in PyTorch.

The per-token recurrence S_i = γ_i S_{i-1} + k_i v_iᵀ is rewritten over chunks of C
tokens so that almost all work is batched matrix products:

    b_i      = Σ_{j<=i in chunk} log γ_j                        (float32 cumulative log-gate)
    o_i      = Σ_{j<=i in chunk} e^{b_i - b_j} (q_i·k_j) v_j  +  e^{b_i} q_iᵀ S_prev
    S_next   = e^{b_C} S_prev + Σ_j e^{b_C - b_j} k_j v_jᵀ

Every exponent is a difference b_i - b_j with i >= j (or b_i itself), hence <= 0. The
differences for i < j are positive; they are clamped to 0 *before* the exponential and
the result is multiplied by the causal mask, so no positive number is ever exponentiated
and nothing can overflow however strong the gates are. The normaliser z rides along as an extra value
column of ones (v' = [v, 1], S' = [S, z]), so numerator and denominator come out of the
same products.

A segment of N chunks runs in three phases: the per-chunk products (batched over all
chunks), the chunk states (the scan S_n = e^{g_n} S_{n-1} + ΔS_n, one small fused
multiply-add per chunk), and the read-out (batched again). Segments run one after
another, handing the state on exactly as a prefill in pieces does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lizard_bench.kernels.state import GLAState
from lizard_bench.kernels.torch_backend.common import SegmentedOutput, accumulation_dtype, contiguous_as

DEFAULT_CHUNK_SIZE = 32
# Tokens per segment (see gated_linear_attention).
SEGMENT = 256
# Decay exponents are clamped from below to this. e^{-60} ≈ 1e-26 is far below float32
# resolution next to the weight-1 diagonal term every output has, so no result changes;
# but an exponential whose result is subnormal (x < -87 in float32) takes a slow path in
# PyTorch's CPU exp, measured 8x slower than a normal one, and strong gates produce many.
DECAY_FLOOR = -60.0


def gated_linear_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    log_gate: torch.Tensor,
    *,
    initial_state: GLAState | None = None,
    output_final_state: bool = False,
    eps: float = 1e-6,
    normalize: bool = True,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    segment: int = SEGMENT,
) -> tuple[torch.Tensor, GLAState | None]:
    """Gated linear attention: q [B, T, H, K], k [B, T, Hk, K], v [B, T, Hv, V], log_gate [B, T, H] -> (o, state).

    o is [B, T, H, V]; Hk and Hv divide H (query head h reads key head h // (H / Hk) and value
    head h // (H / Hv)); they are broadcast inside each segment's layout copy, never repeated
    over the whole sequence.

    o_i = q_iᵀ S_i / (q_iᵀ z_i + eps), or the numerator q_iᵀ S_i alone when ``normalize`` is
    False. The state (S [B, H, K, V], z [B, H, K]) is float32 (float64 for float64 inputs)
    and is returned when ``output_final_state``; z is carried either way, so a state can be
    handed between normalised and unnormalised calls.

    Long inputs run ``segment`` tokens at a time, handing the state on exactly as a
    prefill in pieces does: the temporaries of a segment stay cache-sized and are reused
    instead of freshly allocated (at 16K tokens, one segment took over twice the CPU time).
    ``chunk_size`` and ``segment`` were tuned on a 2-core CPU at K = 128, V = 64.
    """
    B, T, H, K = q.shape
    V = v.shape[-1]
    acc = accumulation_dtype(q.dtype)
    C = max(1, min(chunk_size, T))
    step = max(C, segment // C * C)  # segments hold whole chunks
    gates = _chunk_gates(log_gate, C, acc)  # cumulative log-gates and their decays, all chunks at once
    state = _initial_state(initial_state, B, H, K, V, acc, q.device)  # [B, H, K, V+1]
    causal = torch.ones(C, C, dtype=acc, device=q.device).tril_()
    out = SegmentedOutput((B, T, H, V), q.dtype, q.device, q, k, v, log_gate, *(initial_state or ()))
    for start in range(0, T, step):
        stop = min(T, start + step)
        chunks = slice(start // C, -(-stop // C))
        piece, state = _segment(q[:, start:stop], k[:, start:stop], v[:, start:stop],
                                *(g[:, :, chunks] for g in gates), state, causal, eps=eps if normalize else None)
        out.add(piece, stop - start)  # piece: [B, stop - start, H, V]
    final = GLAState(S=state[..., :V].contiguous(), z=state[..., V].contiguous()) if output_final_state else None
    return out.result(), final


def _chunk_gates(log_gate: torch.Tensor, C: int, acc: torch.dtype) -> tuple[torch.Tensor, ...]:
    """Per-chunk gate quantities for the whole sequence, [B, H, N, C] (or [B, H, N]).

    Returns (b, e^b, e^{b_C - b}, e^{b_C}) with b the cumulative log-gate within each
    chunk (float32) and b_C its last entry, the whole chunk's log-decay. Padding positions
    get log γ = 0 (γ = 1), so they leave the state unchanged.
    """
    B, T, H = log_gate.shape
    N = -(-T // C)
    gate = log_gate.to(acc).transpose(1, 2)  # [B, H, T]
    gate = F.pad(gate, (0, N * C - T)) if N * C > T else gate
    b = gate.reshape(B, H, N, C).cumsum(dim=-1)  # [B, H, N, C], each entry <= 0
    b_last = b[..., -1:]  # [B, H, N, 1]
    return b, _decay(b), _decay(b_last - b), _decay(b_last).squeeze(-1)


def _segment(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    b: torch.Tensor,
    decay_from_start: torch.Tensor,
    decay_to_end: torch.Tensor,
    chunk_decay: torch.Tensor,
    state: torch.Tensor,
    causal: torch.Tensor,
    *,
    eps: float | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Chunked GLA over one segment of N chunks of C tokens: (o [B, T, H, V], state [B, H, K, V+1]).

    ``state`` is S with z as its last column, entering the segment; the gate tensors are
    this segment's slices of :func:`_chunk_gates`; ``causal`` is the [C, C] lower
    triangle of ones. The output is in the accumulation dtype, as a strided view; ``eps=None``
    returns the numerator without dividing by the normaliser.
    """
    B, T, H, K = q.shape
    V = v.shape[-1]
    N, C = b.shape[-2:]
    pad = N * C - T  # padded tokens have q = k = 0 and log γ = 0

    qc = _chunked(q, pad, state.dtype, H).view(B, H, N, C, K)
    kc = _chunked(k, pad, state.dtype, H).view(B, H, N, C, K)  # grouped key heads broadcast in the same copy
    vc = _values_with_ones(v, pad, state.dtype, H).view(B, H, N, C, V + 1)  # v' = [v, 1]

    # Intra-chunk: e^{b_i - b_j} for i >= j, exactly 0 above the diagonal.
    decay = _decay(b.unsqueeze(-1) - b.unsqueeze(-2)) * causal  # [B, H, N, C, C]
    out = torch.matmul(torch.matmul(qc, kc.transpose(-1, -2)) * decay, vc)  # [B, H, N, C, V+1]

    # Each chunk's own contribution to the state at its end, ΔS_n = Σ_j e^{b_C - b_j} k_j v'_jᵀ
    # (the decay scales the V+1 value columns rather than the K key columns: fewer products).
    delta = torch.matmul(kc.transpose(-1, -2), vc * decay_to_end.unsqueeze(-1))  # [B, H, N, K, V+1]

    # The scan over chunks, S_n = e^{g_n} S_{n-1} + ΔS_n with g_n = b_C of chunk n: one fused
    # multiply-add of a [K, V+1] state per chunk.
    states = []
    for delta_n, decay_n in zip(delta.unbind(2), chunk_decay[..., None, None].unbind(2), strict=True):
        states.append(state)
        state = torch.addcmul(delta_n, decay_n, state)
    before = torch.stack(states, dim=2)  # [B, H, N, K, V+1]: the state entering each chunk

    # Inter-chunk read-out e^{b_i} q_iᵀ S_before (again scaling the narrower V+1 side).
    out = out.addcmul_(torch.matmul(qc, before), decay_from_start.unsqueeze(-1))

    out = out.view(B, H, N * C, V + 1)[:, :, :T]
    if eps is None:
        return out[..., :V].transpose(1, 2), state
    return (out[..., :V] / (out[..., V:] + eps)).transpose(1, 2), state


def gated_linear_attention_step(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    log_gate: torch.Tensor,
    state: GLAState,
    *,
    eps: float = 1e-6,
    normalize: bool = True,
    in_place: bool = False,
) -> tuple[torch.Tensor, GLAState]:
    """One decode step: q [B, H, K], k [B, Hk, K], v [B, Hv, V], log_gate [B, H] -> (o [B, H, V], new state).

    Hk and Hv divide H (grouped heads, broadcast to the query heads).

    The state keeps its dtype (float32, or float64 when it came from float64 inputs);
    ``normalize=False`` returns the numerator q_iᵀ S_i alone. ``in_place`` updates ``state``'s
    tensors themselves (and returns them): a decode loop then allocates no [B, H, K, V] state per token.
    """
    acc = state.S.dtype
    H = q.shape[1]
    qf, kf, vf = q.to(acc), _heads(k.to(acc), H), _heads(v.to(acc), H)
    gamma = log_gate.to(acc).exp()  # [B, H]
    if in_place:
        S = state.S.mul_(gamma[..., None, None]).addcmul_(kf.unsqueeze(-1), vf.unsqueeze(-2))
        z = state.z.mul_(gamma[..., None]).add_(kf)
    else:
        S = torch.addcmul(kf.unsqueeze(-1) * vf.unsqueeze(-2), gamma[..., None, None], state.S)  # [B, H, K, V]
        z = torch.addcmul(kf, gamma[..., None], state.z)  # [B, H, K]
    num = torch.matmul(qf.unsqueeze(-2), S).squeeze(-2)  # [B, H, V]
    if not normalize:
        return num.to(q.dtype), GLAState(S=S, z=z)
    den = (qf * z).sum(dim=-1, keepdim=True)  # [B, H, 1]
    return (num / (den + eps)).to(q.dtype), GLAState(S=S, z=z)


def _heads(x: torch.Tensor, H: int) -> torch.Tensor:
    """[B, Hx, E] -> [B, H, E], head h // (H / Hx) for query head h (x itself when Hx == H)."""
    B, Hx, E = x.shape
    return x if Hx == H else x.unsqueeze(2).expand(B, Hx, H // Hx, E).reshape(B, H, E)


def _decay(exponent: torch.Tensor) -> torch.Tensor:
    """e^x for a log-decay x, clamped into [DECAY_FLOOR, 0] first.

    The upper clamp means a positive number is never exponentiated (the differences above
    a chunk's diagonal are clamped to 0 and then multiplied by the causal mask); the lower
    clamp keeps the exponential out of the subnormal range (see ``DECAY_FLOOR``).
    Clamping instead of masking to -inf is deliberate: exp(-inf) takes a slow path too.
    """
    return exponent.clamp(min=DECAY_FLOOR, max=0.0).exp_()


def _values_with_ones(v: torch.Tensor, pad: int, acc: torch.dtype, H: int) -> torch.Tensor:
    """[B, T, Hv, V] -> contiguous [B, H, T + pad, V + 1] holding [v, 1] (padded rows are 0), one copy.

    With Hv < H, value head h // (H / Hv) is written for query head h in the same pass.
    """
    B, T, Hv, V = v.shape
    out = torch.empty(B, H, T + pad, V + 1, dtype=acc, device=v.device)
    out.view(B, Hv, H // Hv, T + pad, V + 1)[..., :T, :V] = v.transpose(1, 2).unsqueeze(2)
    out[:, :, :T, V] = 1.0
    if pad:
        out[:, :, T:] = 0.0
    return out


def _chunked(x: torch.Tensor, pad: int, acc: torch.dtype, H: int) -> torch.Tensor:
    """[B, T, Hx, E] -> contiguous [B, H, T + pad, E] in the accumulation dtype (one copy).

    With Hx < H (grouped heads), head h // (H / Hx) is copied for query head h in the same pass.
    """
    B, T, Hx, E = x.shape
    x = x.transpose(1, 2)  # [B, Hx, T, E] (view)
    if Hx != H:
        x = x.unsqueeze(2).expand(B, Hx, H // Hx, T, E)
    x = contiguous_as(x, acc).view(B, H, T, E)
    return F.pad(x, (0, 0, 0, pad)) if pad else x


def _initial_state(state: GLAState | None, B: int, H: int, K: int, V: int, acc, device) -> torch.Tensor:
    """The state as one [B, H, K, V+1] tensor: S with z as its last column."""
    if state is None:
        return torch.zeros(B, H, K, V + 1, dtype=acc, device=device)
    return torch.cat([state.S.to(acc), state.z.to(acc).unsqueeze(-1)], dim=-1)
