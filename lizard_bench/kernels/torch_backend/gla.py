"""Chunked scalar-gated linear attention with normaliser, in PyTorch.

The per-token recurrence S_i = γ_i S_{i-1} + k_i v_iᵀ is rewritten over chunks of C
tokens so that almost all work is batched matrix products:

    b_i      = Σ_{j<=i in chunk} log γ_j                        (float32 cumulative log-gate)
    o_i      = Σ_{j<=i in chunk} e^{b_i - b_j} (q_i·k_j) v_j  +  e^{b_i} q_iᵀ S_prev
    S_next   = e^{b_C} S_prev + Σ_j e^{b_C - b_j} k_j v_jᵀ

Every exponent is a difference b_i - b_j with i >= j (or b_i itself), hence <= 0. The
differences for i < j are positive; they are clamped to 0 *before* the exponential and
the result is multiplied by the causal mask, so no positive number is ever exponentiated
and nothing can overflow however strong the gates are. The normaliser z (S for a value
column of ones) is computed beside S by row sums and matrix-vector products: kept out of
the value matrices, the products stay V wide (a 65-wide [v, 1] ran 25% slower than 64).

A segment of N chunks runs in three phases: the per-chunk products (batched over all
chunks), the chunk states (the scan S_n = e^{g_n} S_{n-1} + ΔS_n, one small fused
multiply-add per chunk, written straight into one buffer when autograd is off), and the
read-out (batched again). Segments run one after another, handing the state on exactly as
a prefill in pieces does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lizard_bench.kernels.state import GLAState
from lizard_bench.kernels.torch_backend.common import SegmentedOutput, accumulation_dtype, as_dtype, contiguous_as

# Measured on a 2-core CPU at K = 128, V = 64 (one process, interleaved): chunks of 64 took 0.90-0.98x the time
# of chunks of 32 at 512-16K tokens, forward and forward + backward alike.
DEFAULT_CHUNK_SIZE = 64
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
    Without autograd each segment's output is divided straight into its place in the result.
    ``chunk_size`` and ``segment`` were tuned on a 2-core CPU at K = 128, V = 64.
    """
    B, T, H, K = q.shape
    V = v.shape[-1]
    acc = accumulation_dtype(q.dtype)
    C = max(1, min(chunk_size, T))
    step = max(C, segment // C * C)  # segments hold whole chunks
    gates = _chunk_gates(log_gate, C, acc)  # cumulative log-gates and their decays, all chunks at once
    S, z = _initial_state(initial_state, B, H, K, V, acc, q.device)  # [B, H, K, V], [B, H, K]
    causal = torch.ones(C, C, dtype=acc, device=q.device).tril_()
    out = SegmentedOutput((B, T, H, V), q.dtype, q.device, q, k, v, log_gate, *(initial_state or ()))
    # split, not slices: autograd turns each slice into a zero-filled gradient of the whole input
    segments = zip(*(x.split(step, dim=1) for x in (q, k, v)), *(g.split(step // C, dim=2) for g in gates),
                   strict=True)
    for q_seg, k_seg, v_seg, *gates_seg in segments:
        length = q_seg.shape[1]
        piece, S, z = _segment(q_seg, k_seg, v_seg, *gates_seg, S, z, causal, eps=eps if normalize else None,
                               dest=out.slot(length))
        if piece is not None:
            out.add(piece, length)  # piece: [B, length, H, V]
    return out.result(), (GLAState(S=S, z=z) if output_final_state else None)


def _chunk_gates(log_gate: torch.Tensor, C: int, acc: torch.dtype) -> tuple[torch.Tensor, ...]:
    """Per-chunk gate quantities for the whole sequence, [B, H, N, C] (or [B, H, N]).

    Returns (b, e^b, e^{b_C - b}, b_C) with b the cumulative log-gate within each chunk
    (float32) and b_C its last entry, the whole chunk's log-decay. Padding positions get
    log γ = 0 (γ = 1), so they leave the state unchanged.
    """
    B, T, H = log_gate.shape
    N = -(-T // C)
    gate = log_gate.to(acc).transpose(1, 2)  # [B, H, T]
    gate = F.pad(gate, (0, N * C - T)) if N * C > T else gate
    b = gate.reshape(B, H, N, C).cumsum(dim=-1)  # [B, H, N, C], each entry <= 0
    b_last = b[..., -1:]  # [B, H, N, 1]
    return b, _decay(b), _decay(b_last - b), b_last.squeeze(-1)


def _segment(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    b: torch.Tensor,
    decay_from_start: torch.Tensor,
    decay_to_end: torch.Tensor,
    chunk_log_decay: torch.Tensor,
    S: torch.Tensor,
    z: torch.Tensor,
    causal: torch.Tensor,
    *,
    eps: float | None,
    dest: torch.Tensor | None = None,
) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor]:
    """Chunked GLA over one segment of N chunks of C tokens: (o [B, T, H, V] or None, S, z).

    ``S`` [B, H, K, V] and ``z`` [B, H, K] are the state entering the segment (the returned
    ones leave it); the gate tensors are this segment's slices of :func:`_chunk_gates`;
    ``causal`` is the [C, C] lower triangle of ones. ``eps=None`` returns the numerator
    without dividing by the normaliser. With ``dest`` ([B, T, H, V], no autograd) the output
    is written there and None returned; otherwise it is returned in the accumulation dtype,
    as a strided view.
    """
    B, T, H, K = q.shape
    V = v.shape[-1]
    N, C = b.shape[-2:]
    pad = N * C - T  # padded tokens have q = k = v = 0 and log γ = 0
    acc = S.dtype
    grad = dest is None  # autograd may be watching: no in-place updates of its saved tensors

    qc = _chunked(q, pad, acc, H).view(B, H, N, C, K)
    kc = _chunked(k, pad, acc, H).view(B, H, N, C, K)  # grouped key/value heads broadcast in the same copy
    vc = _chunked(v, pad, acc, H).view(B, H, N, C, V)

    # Intra-chunk: e^{b_i - b_j} for i >= j, exactly 0 above the diagonal.
    decay = _decay(b.unsqueeze(-1) - b.unsqueeze(-2))
    decay = decay * causal if grad else decay.mul_(causal)  # [B, H, N, C, C]
    scores = torch.matmul(qc, kc.transpose(-1, -2))
    scores = scores * decay if grad else scores.mul_(decay)
    num = torch.matmul(scores, vc)  # [B, H, N, C, V]
    den = scores.sum(dim=-1) if eps is not None else None  # [B, H, N, C]: the same with v = 1

    # Each chunk's own contribution to the state at its end, ΔS_m = Σ_j e^{b_C - b_j} k_j v_jᵀ
    # (the decay scales the V value columns rather than the K key columns: fewer products),
    # and Δz_m = Σ_j e^{b_C - b_j} k_j.
    delta_S = torch.matmul(kc.transpose(-1, -2), vc * decay_to_end.unsqueeze(-1))  # [B, H, N, K, V]
    delta_z = torch.matmul(decay_to_end.unsqueeze(-2), kc).squeeze(-2)  # [B, H, N, K]

    # The states entering each chunk: S_n = e^{g_{n-1}} S_{n-1} + ΔS_{n-1}, one fused multiply-add of a
    # [K, V] state per chunk. (One product with the [N, N] matrix of inter-chunk decays measured slower:
    # an 8-row product over [N, K·V] is memory-bound and MKL ran it at a fraction of the scan's speed.)
    chunk_decay = _decay(chunk_log_decay)  # [B, H, N]
    S_in, S = _scan(delta_S, chunk_decay[..., None, None], S, in_place=not grad)  # [B, H, N, K, V]
    z_in, z = _scan(delta_z, chunk_decay[..., None], z, in_place=not grad)  # [B, H, N, K]

    # Inter-chunk read-out e^{b_i} q_iᵀ S_n (and q_iᵀ z_n for the normaliser).
    num = num.addcmul_(torch.matmul(qc, S_in), decay_from_start.unsqueeze(-1))
    num = num.view(B, H, N * C, V)[:, :, :T]
    if eps is None:
        return _emit(num, dest), S, z
    # q_i·z_n as a product and row sum: a batched matrix-vector product (bmm with one column) ran 5x slower
    den = den.addcmul_((qc * z_in.unsqueeze(-2)).sum(dim=-1), decay_from_start)
    den = den.view(B, H, N * C, 1)[:, :, :T].add_(eps)
    if dest is None:
        return (num / den).transpose(1, 2), S, z
    torch.div(num, den, out=dest.transpose(1, 2))
    return None, S, z


def _scan(delta: torch.Tensor, decay: torch.Tensor, state: torch.Tensor, *,
          in_place: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """x_n = decay_n x_{n-1} + delta_n over chunks n (dim 2): (the states entering each chunk, the last one leaving).

    ``delta`` [B, H, N, ...], ``decay`` [B, H, N, 1, ...] broadcasting against one chunk's state, ``state``
    [B, H, ...] entering the first chunk. ``in_place`` writes the states straight into one buffer
    (no autograd); otherwise they are stacked.
    """
    N = delta.shape[2]
    if in_place:
        states = torch.empty_like(delta)
        states[:, :, 0] = state
        for n in range(1, N):
            torch.addcmul(delta[:, :, n - 1], decay[:, :, n - 1], states[:, :, n - 1], out=states[:, :, n])
        return states, torch.addcmul(delta[:, :, N - 1], decay[:, :, N - 1], states[:, :, N - 1])
    entering = []
    # unbind, not delta[:, :, n]: autograd turns each index into a zero-filled gradient of the whole input
    for delta_n, decay_n in zip(delta.unbind(2), decay.unbind(2), strict=True):
        entering.append(state)
        state = torch.addcmul(delta_n, decay_n, state)
    return torch.stack(entering, dim=2), state


def _emit(out: torch.Tensor, dest: torch.Tensor | None) -> torch.Tensor | None:
    """[B, H, T, V] -> written into ``dest`` [B, T, H, V] (None returned), or returned as a [B, T, H, V] view."""
    if dest is None:
        return out.transpose(1, 2)
    dest.transpose(1, 2).copy_(out)
    return None


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
    tensors themselves (and returns them; a state that is not contiguous is copied first): a decode loop
    then allocates no [B, H, K, V] state per token.
    """
    acc = state.S.dtype
    B, H, K = q.shape
    Hv, V = v.shape[1], v.shape[2]
    qf, kf = as_dtype(q, acc), _heads(as_dtype(k, acc), H)
    gamma = as_dtype(log_gate, acc).exp()  # [B, H]
    if in_place:
        if not (state.S.is_contiguous() and state.z.is_contiguous()):  # copied once; later steps are in place
            state = GLAState(S=state.S.contiguous(), z=state.z.contiguous())
        return _step_in_place(qf, kf, as_dtype(v, acc), gamma, state, eps=eps, normalize=normalize, dtype=q.dtype)
    # grouped values broadcast in place of a copy: S viewed [B, Hv, G, K, V] against v [B, Hv, 1, 1, V]
    grouped_k, grouped_v = kf.reshape(B, Hv, H // Hv, K, 1), v.to(acc).reshape(B, Hv, 1, 1, V)
    S = torch.addcmul((grouped_k * grouped_v).view(B, H, K, V), gamma[..., None, None], state.S)  # [B, H, K, V]
    z = torch.addcmul(kf, gamma[..., None], state.z)  # [B, H, K]
    query = qf.unsqueeze(-2)  # [B, H, 1, K]
    num = torch.matmul(query, S).squeeze(-2)  # [B, H, V]
    if not normalize:
        return num.to(q.dtype), GLAState(S=S, z=z)
    den = (qf * z).sum(dim=-1, keepdim=True)  # [B, H, 1]
    return (num / (den + eps)).to(q.dtype), GLAState(S=S, z=z)


def _step_in_place(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, gamma: torch.Tensor, state: GLAState, *, eps: float,
    normalize: bool, dtype: torch.dtype,
) -> tuple[torch.Tensor, GLAState]:
    """The step on contiguous state tensors, as flat batched products (q, k [B, H, K], v [B, Hv, V], gamma [B, H]).

    Why a path of its own: a decode step's arithmetic is tiny, so its cost is the number of calls, which every
    layer pays for every token. The G heads sharing a value head take their k vᵀ as one [G·K, 1] @ [1, V]
    product, and the read-outs are one bmm each, instead of broadcast views and matmul's reshapes.
    """
    S, z = state.S, state.z
    B, H, K, V = S.shape
    Hv = v.shape[1]
    S.mul_(gamma.view(B, H, 1, 1))
    S.view(B * Hv, H // Hv * K, V).baddbmm_(k.reshape(B * Hv, H // Hv * K, 1), v.reshape(B * Hv, 1, V))
    z.mul_(gamma.view(B, H, 1)).add_(k)
    rows = q.reshape(B * H, 1, K)
    num = torch.bmm(rows, S.view(B * H, K, V)).view(B, H, V)
    if normalize:
        num = num.div_(torch.bmm(rows, z.view(B * H, K, 1)).view(B, H, 1).add_(eps))
    return as_dtype(num, dtype), GLAState(S=S, z=z)


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


def _initial_state(state: GLAState | None, B: int, H: int, K: int, V: int, acc,
                   device) -> tuple[torch.Tensor, torch.Tensor]:
    """The state (S [B, H, K, V], z [B, H, K]) in the accumulation dtype."""
    if state is None:
        return torch.zeros(B, H, K, V, dtype=acc, device=device), torch.zeros(B, H, K, dtype=acc, device=device)
    return state.S.to(acc), state.z.to(acc)
