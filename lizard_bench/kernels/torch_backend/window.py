"""Banded sliding-window softmax attention with sinks: O(T·w) instead of O(T·S).

Queries are cut into blocks of c positions. Query i sees keys i - w < j <= i, so a
whole block sees a contiguous span of its own c keys plus the P = ceil((w - 1) / c)
key blocks before it: L = (P + 1)·c keys. Each block is one small dense masked softmax
against that span, and all blocks of a segment run as batched matrix products. With c = w
the span is 2w; a smaller c wastes less of the span on masked entries but gives the matrix
products smaller tiles.

Nothing is copied per span. A segment is a run of query blocks of one KV head (the G query
heads sharing it stack as rows of each block): its keys and values are copied once into a
contiguous buffer (with zero rows where a span reaches before key 0, which are masked, or
past the last key), and the spans of all its blocks are one overlapping strided view of
that buffer (``unfold``) that the matrix products read in place. Padded queries at the end
are computed on zeros and dropped.

The softmax is written out, with the max shift taken without autograd (it cancels exactly):
e^{s - max} in place, its row sums, and the division applied to the [c, Dv] product instead
of the [c, L] probabilities. The sinks add Σ_r e^{t_r - max} to each row's sum (and enter the
max), and nothing to the product.
"""

from __future__ import annotations

import torch

from lizard_bench.kernels.masking import key_bias
from lizard_bench.kernels.torch_backend.common import accumulation_dtype, needs_grad

# Query rows (query positions x the query heads of one KV head) per segment (see banded_window_attention).
SEGMENT = 2048


def default_block_size(window: int) -> int:
    """Query block size: 32 (or the window, if smaller).

    Measured on CPU at w = 128: c = 32 (spans of 5w/4 keys) beat 16 (9w/8) and 64 (3w/2);
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

    Queries are the last T of S positions; ``sink_logits`` [H, m] or None; ``key_mask`` [B, S] or
    None. Each segment holds about ``segment`` query rows (blocks of c positions of the G query
    heads of one KV head): its temporaries stay cache-sized and are reused instead of freshly
    allocated (at 16K tokens, unsegmented took twice the CPU time). Without autograd each
    segment's output is copied straight into place.
    """
    B, T, H, D = q.shape
    S, Hkv, Dv = k.shape[1], k.shape[2], v.shape[-1]
    G = H // Hkv
    acc = accumulation_dtype(q.dtype)
    c = block_size or default_block_size(window)
    P = -(-(window - 1) // c)  # previous key blocks a query block can reach
    N = -(-T // c)  # query blocks
    per_segment = max(1, segment // (G * c))  # query blocks per segment
    differentiable = needs_grad(q, k, v, sink_logits)
    bias = span_bias(c, P, window, G, acc, q.device)  # [G*c, L]
    masked_columns = _masked_columns(bias)
    scores_of_keys = None if key_mask is None else key_bias(key_mask, acc)  # [B, S]
    sinks = None if sink_logits is None else sink_logits.to(acc).view(Hkv, G, 1, -1)

    out = None if differentiable else torch.empty(B, T, H, Dv, dtype=q.dtype, device=q.device)
    lse = None if differentiable or not return_lse else torch.empty(B, T, H, 1, dtype=acc, device=q.device)
    pieces, lse_pieces = [], []
    for b in range(B):
        for h in range(Hkv):
            heads = slice(h * G, (h + 1) * G)
            for n0 in range(0, N, per_segment):
                n1 = min(N, n0 + per_segment)
                first = S - T + (n0 - P) * c  # the key at the segment's first span position (< 0: padding)
                length = (n1 - n0 + P) * c
                piece, piece_lse = _segment(
                    _query_blocks(q[b, n0 * c : n1 * c, heads], n1 - n0, c, acc),
                    _key_rows(k[b, :, h], first, length, acc), _key_rows(v[b, :, h], first, length, acc),
                    bias, masked_columns, None if sinks is None else sinks[h],
                    None if scores_of_keys is None else _key_rows(scores_of_keys[b, :, None], first, length, acc),
                    front=max(0, -first), scale=scale, c=c, G=G, return_lse=return_lse,
                    in_place=not differentiable,
                )
                if differentiable:
                    pieces.append(piece)
                    lse_pieces.append(piece_lse)
                    continue
                _place(piece, out[b, n0 * c : n1 * c, heads], G, c)
                if lse is not None:
                    _place(piece_lse, lse[b, n0 * c : n1 * c, heads], G, c)
    if differentiable:
        out = _gather(torch.cat(pieces), B, Hkv, N, G, c, T).to(q.dtype)
        if return_lse:
            lse = _gather(torch.cat(lse_pieces), B, Hkv, N, G, c, T)
    if not return_lse:
        return out
    return out, lse.squeeze(-1)


def _segment(
    q: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    bias: torch.Tensor,
    masked_columns: tuple[slice, ...],
    sinks: torch.Tensor | None,
    key_scores: torch.Tensor | None,
    *,
    front: int,
    scale: float,
    c: int,
    G: int,
    return_lse: bool,
    in_place: bool,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """n query blocks q [n, G*c, D] against the spans of ``keys``/``values`` [(n + P)·c, *] (block i's span:
    rows [i·c, i·c + L)).

    ``masked_columns`` are the span columns where ``bias`` [G*c, L] hides anything; ``sinks``
    [G, 1, m] or None; ``key_scores`` [(n + P)·c, 1] (additive, per key) or None; the first
    ``front`` key rows lie before key 0. Returns the output [n, G*c, Dv] (accumulation dtype)
    and, if asked, the log normalisers [n, G*c, 1].
    """
    n, L = q.shape[0], bias.shape[-1]
    k_spans = keys.unfold(0, L, c)  # [n, D, L]: an overlapping strided view, no copy
    v_spans = values.unfold(0, L, c).transpose(1, 2)  # [n, L, Dv]
    scores = torch.bmm(q, k_spans)  # [n, G*c, L]
    scores = scores.mul_(scale) if in_place else scores * scale
    for columns in masked_columns:  # the window's edges: only these columns hold any -inf
        scores[..., columns] += bias[:, columns]
    for i in range(min(n, -(-front // c))):  # spans that start before key 0
        scores[i, :, : front - i * c] = float("-inf")
    if key_scores is not None:
        scores += key_scores.unfold(0, L, c)  # [n, 1, L]
    top = scores.detach().amax(dim=-1, keepdim=True)  # [n, G*c, 1]; the shift cancels, so no gradient
    if sinks is not None:
        top = torch.maximum(top.view(n, G, c, 1), sinks.detach().amax(dim=-1, keepdim=True)).view(n, G * c, 1)
    weights = scores.sub_(top).exp_()  # e^{s - max}, in place (exp_ keeps its result for the backward)
    total = weights.sum(dim=-1, keepdim=True)  # [n, G*c, 1]
    if sinks is not None:
        total = total + torch.exp(sinks - top.view(n, G, c, 1)).sum(dim=-1, keepdim=True).view(n, G * c, 1)
    out = torch.bmm(weights, v_spans)  # [n, G*c, Dv]
    out = out.div_(total) if in_place else out / total
    return out, (top + torch.log(total) if return_lse else None)


def _query_blocks(q: torch.Tensor, n: int, c: int, acc: torch.dtype) -> torch.Tensor:
    """[t, G, D] (t <= n·c positions) -> [n, G*c, D]: block i holds positions i·c ... of each head as rows
    ordered (head, position); positions past t are zeros. One copy."""
    t, G, D = q.shape
    out = torch.empty(n, G, c, D, dtype=acc, device=q.device)
    blocks = out.transpose(1, 2)  # [n, c, G, D] view
    full = t // c
    if full:
        blocks[:full] = q[: full * c].view(full, c, G, D)
    if t > full * c:
        blocks[full, : t - full * c] = q[full * c :]
        blocks[full, t - full * c :] = 0.0
    return out.view(n, G * c, D)


def _key_rows(x: torch.Tensor, first: int, length: int, acc: torch.dtype) -> torch.Tensor:
    """Rows first ... first + length - 1 of x [S, E] as a contiguous [length, E] buffer, zeros where out of range."""
    S = x.shape[0]
    lo, hi = max(0, first), min(S, first + length)
    if lo == first and hi == first + length:
        return x[lo:hi].to(acc, memory_format=torch.contiguous_format).contiguous()
    out = torch.empty(length, x.shape[1], dtype=acc, device=x.device)
    out[: lo - first] = 0.0
    out[lo - first : hi - first] = x[lo:hi]
    out[hi - first :] = 0.0
    return out


def _place(piece: torch.Tensor, dest: torch.Tensor, G: int, c: int) -> None:
    """Copy a segment's [n, G*c, E] rows into ``dest`` [t, G, E] (t <= n·c positions, the rest padding)."""
    n, _, E = piece.shape
    blocks = piece.view(n, G, c, E).transpose(1, 2)  # [n, c, G, E]
    t = dest.shape[0]
    if t == n * c:
        dest.view(n, c, G, E).copy_(blocks)
        return
    full = t // c
    if full:
        dest[: full * c].view(full, c, G, E).copy_(blocks[:full])
    dest[full * c :].copy_(blocks[full, : t - full * c])


def _gather(flat: torch.Tensor, B: int, Hkv: int, N: int, G: int, c: int, T: int) -> torch.Tensor:
    """[B*Hkv*N, G*c, E] (blocks ordered batch, KV head, block) -> [B, T, H, E], differentiably."""
    E = flat.shape[-1]
    blocks = flat.view(B, Hkv, N, G, c, E)
    return blocks.permute(0, 2, 4, 1, 3, 5).reshape(B, N * c, Hkv * G, E)[:, :T]


def span_bias(c: int, P: int, window: int, G: int, dtype: torch.dtype, device) -> torch.Tensor:
    """Additive mask [G*c, L] of a query block against its span: 0 where visible, -inf elsewhere.

    Query a of a block sits at span position a + P*c and sees span entries b with
    a + P*c - w < b <= a + P*c. Rows are ordered (head, position) like the stacked queries.
    """
    L = (P + 1) * c
    a = torch.arange(c, device=device).view(c, 1)
    b = torch.arange(L, device=device).view(1, L)
    visible = (b <= a + P * c) & (b > a + P * c - window)  # [c, L]
    bias = torch.zeros(c, L, dtype=dtype, device=device).masked_fill_(~visible, float("-inf"))
    return bias.repeat(G, 1)


def _masked_columns(bias: torch.Tensor) -> tuple[slice, ...]:
    """The column ranges of ``bias`` that hold any -inf, as at most two slices (a leading and a trailing run;
    everything between is visible to every row)."""
    hidden = torch.isinf(bias).any(dim=0).tolist()
    L = len(hidden)
    lead = next((i for i, h in enumerate(hidden) if not h), L)
    trail = next((i for i in range(L, 0, -1) if not hidden[i - 1]), 0)
    if lead >= trail:
        return (slice(0, L),)
    if any(hidden[lead:trail]):
        return (slice(0, L),)
    return tuple(s for s in (slice(0, lead), slice(trail, L)) if s.stop > s.start)
