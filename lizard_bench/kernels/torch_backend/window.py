"""Banded sliding-window softmax attention with sinks: O(T·w) instead of O(T·S).

Queries are cut into blocks of c positions. Query i sees keys i - w < j <= i, so a
whole block sees a contiguous span of its own c keys plus the P = ceil((w - 1) / c)
key blocks before it: L = (P + 1)·c keys. Each block is one small dense masked softmax
against that span, and all blocks run as one batched matrix product. With c = w the
span is 2w; a smaller c wastes less of the span on masked entries but gives the matrix
products smaller tiles. The keys are padded at the front (P·c positions) and the
queries at the back (to a multiple of c) so every block has the same shape; padded keys
are masked, padded queries are computed and dropped.

Sinks ride in the same softmax: each span gets m extra slots with a zero key and a zero
value whose score is overwritten with the sink logit t. The slot adds e^{t} to the
normaliser and nothing to the output, and PyTorch's fused softmax max-shifts keys and
sinks together, so there is no hand-written exponential anywhere.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lizard_bench.kernels.masking import key_bias
from lizard_bench.kernels.torch_backend.common import SegmentedOutput, accumulation_dtype, contiguous_as

# Queries per segment (see banded_window_attention).
SEGMENT = 256


def default_block_size(window: int) -> int:
    """Query block size: 32 (or the window, if smaller).

    Measured on CPU at w = 128: c = 32 (spans of 5w/4 keys) beat 64 (3w/2) and 128 (2w);
    the saved work on masked entries outweighs the smaller matrix products.
    """
    return max(1, min(window, 32))


def banded_window_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    window: int,
    sink_logits: torch.Tensor | None,
    scale: float,
    block_size: int | None = None,
    segment: int = SEGMENT,
    return_lse: bool = False,
    key_mask: torch.Tensor | None = None,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Causal windowed attention: q [B, T, H, D], k [B, S, Hkv, D], v [B, S, Hkv, Dv] -> [B, T, H, Dv].

    Queries are the last T of S positions; ``sink_logits`` [H, m] or None; ``key_mask`` [B, S] or None. Long inputs run
    ``segment`` queries at a time: each segment is again "the last queries of a prefix of
    the keys", and its temporaries stay cache-sized and are reused instead of freshly
    allocated (at 16K tokens, unsegmented took twice the CPU time).
    """
    T, S, H = q.shape[1], k.shape[1], q.shape[2]
    G = H // k.shape[2]
    c = block_size or default_block_size(window)
    P = -(-(window - 1) // c)  # previous key blocks a query block can reach
    m = 0 if sink_logits is None else sink_logits.shape[-1]
    bias = _span_bias(c, P, window, m, G, accumulation_dtype(q.dtype), q.device)  # [G*c, (P+1)*c + m]
    step = max(c, segment // c * c)
    out = SegmentedOutput((*q.shape[:3], v.shape[-1]), q.dtype, q.device, q, k, v, sink_logits)
    lse = SegmentedOutput(q.shape[:3], bias.dtype, q.device, q, k, v, sink_logits) if return_lse else None
    padded = None if key_mask is None else key_bias(key_mask, bias.dtype).view(*key_mask.shape, 1, 1)
    for start in range(0, T, step):
        stop = min(T, start + step)
        end = S - T + stop  # keys up to the segment's last query
        piece, piece_lse = _banded(q[:, start:stop], k[:, :end], v[:, :end], bias, sink_logits, scale=scale, c=c,
                                   P=P, return_lse=return_lse, key_scores=None if padded is None else padded[:, :end])
        out.add(piece, stop - start)
        if lse is not None:
            lse.add(piece_lse, stop - start)
    return (out.result(), lse.result()) if lse is not None else out.result()


def _span_bias(c: int, P: int, window: int, m: int, G: int, dtype: torch.dtype, device) -> torch.Tensor:
    """Additive mask [G*c, L + m] of a query block against its span: 0 where visible, -inf elsewhere.

    Query a of a block sits at span position a + P*c and sees span entries b with
    a + P*c - w < b <= a + P*c; the m sink slots (b >= L) are always visible. Rows are
    ordered (head, position) like the stacked queries.
    """
    L = (P + 1) * c
    a = torch.arange(c, device=device).view(c, 1)
    b = torch.arange(L + m, device=device).view(1, L + m)
    visible = ((b <= a + P * c) & (b > a + P * c - window)) | (b >= L)  # [c, L+m]
    bias = torch.zeros(c, L + m, dtype=dtype, device=device).masked_fill_(~visible, float("-inf"))
    return bias.repeat(G, 1)


def _banded(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    bias: torch.Tensor,
    sink_logits: torch.Tensor | None,
    *,
    scale: float,
    c: int,
    P: int,
    return_lse: bool = False,
    key_scores: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One segment of :func:`banded_window_attention` (query blocks of c, spans of (P + 1)·c keys).

    ``key_scores`` [B, S, 1, 1] is each key's additive score (0, or the masked-key score).

    Returns the accumulation-dtype output as a strided view [B, N, c, Hkv, G, Dv] (N·c >= T
    positions, the last N·c - T of them padding), which the caller copies into place once,
    and, if asked, the rows' log normalisers as a view [B, N, c, Hkv, G] (else None).
    """
    B, T, H, D = q.shape
    S, Hkv, Dv = k.shape[1], k.shape[2], v.shape[-1]
    G = H // Hkv
    L = (P + 1) * c  # keys per query block
    N = -(-T // c)  # query blocks
    m = 0 if sink_logits is None else sink_logits.shape[-1]
    acc = bias.dtype

    # Queries -> [B*Hkv*N, G*c, D]: the G heads sharing a KV head stack as rows of one product.
    qp = F.pad(q, (0, 0, 0, 0, 0, N * c - T)) if N * c > T else q  # [B, N*c, H, D]
    qb = qp.view(B, N, c, Hkv, G, D).permute(0, 3, 1, 4, 2, 5)  # [B, Hkv, N, G, c, D] (view)
    qb = contiguous_as(qb, acc).view(B * Hkv * N, G * c, D)

    # Keys/values -> the span of each block plus the m sink slots, [B*Hkv*N, L + m, *].
    # Padded key position u holds key S - T - P*c + u; the first P*c - lead positions lie
    # before key 0 and are zeros.
    lead = min(S - T, P * c)
    front, back = P * c - lead, N * c - T
    kw = _key_spans(k[:, S - T - lead :], front, back, c, L, m, acc)  # [B*Hkv*N, L+m, D]
    vw = _key_spans(v[:, S - T - lead :], front, back, c, L, m, acc)  # [B*Hkv*N, L+m, Dv]

    scores = torch.baddbmm(bias, qb, kw.transpose(1, 2), alpha=scale)  # [B*Hkv*N, G*c, L+m]
    if front:
        # The first blocks' spans start before key 0: hide the zero padding.
        blocks = scores.view(B, Hkv, N, G * c, L + m)
        for n in range(min(N, -(-front // c))):
            blocks[:, :, n, :, : front - n * c] = float("-inf")
    if key_scores is not None:
        spans = _key_spans(key_scores[:, S - T - lead :], front, back, c, L, 0, acc)  # [B*N, L, 1]
        scores.view(B, Hkv, N, G * c, L + m)[..., :L] += spans.view(B, 1, N, 1, L)
    if m:
        sinks = sink_logits.to(acc).view(1, Hkv, 1, G, 1, m).expand(B, Hkv, N, G, c, m)
        scores.view(B, Hkv, N, G, c, L + m)[..., L:] = sinks
    lse = None
    if return_lse:
        lse = torch.logsumexp(scores, dim=-1).view(B, Hkv, N, G, c).permute(0, 2, 4, 1, 3)  # [B, N, c, Hkv, G]
    out = torch.bmm(torch.softmax(scores, dim=-1), vw)  # [B*Hkv*N, G*c, Dv]
    return out.view(B, Hkv, N, G, c, Dv).permute(0, 2, 4, 1, 3, 5), lse  # [B, N, c, Hkv, G, Dv] (view)


def _key_spans(x: torch.Tensor, front: int, back: int, c: int, L: int, m: int, acc: torch.dtype) -> torch.Tensor:
    """[B, lead + T, Hkv, E] -> [B*Hkv*N, L + m, E]: for each query block, the L keys it can see and m zero rows.

    Pads ``front`` zeros before and ``back`` after, takes overlapping windows of L
    positions every c positions (a strided view), and materialises them once, with the
    m zero sink rows, into a buffer written exactly once (``F.pad`` would first fill the
    whole buffer and then copy over it).
    """
    B, _, Hkv, E = x.shape
    xp = F.pad(x, (0, 0, 0, 0, front, back)) if front or back else x  # [B, P*c + N*c, Hkv, E]
    spans = xp.permute(0, 2, 1, 3).unfold(2, L, c).transpose(-1, -2)  # [B, Hkv, N, L, E] (view)
    N = spans.shape[2]
    if not m:
        return contiguous_as(spans, acc).view(B * Hkv * N, L, E)
    out = torch.empty(B, Hkv, N, L + m, E, dtype=acc, device=x.device)
    out[:, :, :, :L] = spans
    out[:, :, :, L:] = 0.0
    return out.view(B * Hkv * N, L + m, E)
