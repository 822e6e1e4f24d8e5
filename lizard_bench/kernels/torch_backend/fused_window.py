"""Sliding-window softmax with sinks on PyTorch's fused CPU attention kernel, for inference.

Why a second banded path: the written-out one (``window.py``) materialises each block's
scores, exponentiates them in place and copies queries, keys and outputs into block layouts;
at 16K tokens those passes took as long as its matrix products. PyTorch's CPU flash-attention
kernel does the same block computation in one call with its softmax fused, reads strided
inputs in place and returns the log-normaliser, so the sinks can be folded in afterwards.
It has no backward we can use for the sinks, so autograd keeps the written-out path.

The blocks are those of ``window.py``: queries in blocks of c positions, block i's span the
L = (P + 1)·c keys ending with its own block (P = ceil((w - 1) / c)), all spans one overlapping
strided view of the keys (``as_strided``, no copy) and one [c, L] band mask shared by every
block. Only blocks whose span starts before key 0 or that hold fewer than c queries do not fit
that view; they are a few (at most P + 1 per row) and go through the dense path.

The sinks add Σ_r e^{t_r} to each row's normaliser and nothing to its output: the kernel's
output times σ(lse - log Σ_r e^{t_r}), written straight into the result (one pass).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from lizard_bench.kernels.torch_backend.common import accumulation_dtype, needs_grad
from lizard_bench.kernels.torch_backend.window import span_bias

# PyTorch's CPU flash-attention kernel with the log-normaliser; None on a build without it.
CPU_ATTENTION_WITH_LSE = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)

# Query positions per block. Measured at w = 128, 16K tokens, 2-core CPU: c = 16, 32, 64, 128 took
# 68, 71, 77, 88 ms; 32 keeps the blocks that go the dense way (spans before key 0) fewer than 16 does.
BLOCK = 32


def kernel_reads(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_mask: torch.Tensor | None) -> bool:
    """Whether the fused CPU kernel computes this softmax exactly: a build that has it, CPU, no key mask, one
    float32/float64 dtype, Dv = D, and a contiguous last dimension (the kernel reads it as contiguous whatever
    its stride says)."""
    return (CPU_ATTENTION_WITH_LSE is not None and q.device.type == "cpu" and key_mask is None
            and q.dtype == accumulation_dtype(q.dtype) and k.dtype == v.dtype == q.dtype
            and v.shape[-1] == q.shape[-1] and q.stride(-1) == k.stride(-1) == v.stride(-1) == 1)


def applies(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, sink_logits: torch.Tensor | None,
            key_mask: torch.Tensor | None) -> bool:
    """Whether :func:`fused_window_attention` takes this call: what the kernel reads, outside autograd (the
    sinks need a backward it does not have)."""
    return kernel_reads(q, k, v, key_mask) and not needs_grad(q, k, v, sink_logits)


def fused_window_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, window: int, sink_logits: torch.Tensor | None,
    scale: float, return_lse: bool, dense: Callable[..., tuple[torch.Tensor, torch.Tensor]],
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Causal windowed attention, q [B, T, H, D], k and v [B, S, Hkv, D] (queries the last T of S positions).

    ``dense(q, k, v)`` computes (out, lse) for the blocks outside the strided view, with the same
    window, sinks and scale (the caller's exact dense path). Returns out [B, T, H, D] (and lse
    [B, T, H] with the sinks, float32/float64, if ``return_lse``).
    """
    B, T, H, D = q.shape
    S = k.shape[1]
    c = min(BLOCK, window)
    P = -(-(window - 1) // c)
    offset = S - T  # key position of query 0
    first = min(-(-max(0, P * c - offset) // c), T // c)  # blocks whose span starts before key 0
    last = T // c  # blocks after this one hold fewer than c queries
    out = torch.empty(B, T, H, D, dtype=q.dtype, device=q.device)
    lse = torch.empty(B, T, H, dtype=q.dtype, device=q.device) if return_lse else None
    sinks_total = None if sink_logits is None else torch.logsumexp(sink_logits.to(q.dtype), dim=-1)  # [H]
    if last > first:
        mask = span_bias(c, P, window, 1, q.dtype, q.device)  # [c, L], shared by every block
        for b in range(B):
            spans = _spans(q[b], k[b], v[b], first, last, c, P, offset)
            block_out, block_lse = CPU_ATTENTION_WITH_LSE(*spans, attn_mask=mask, scale=scale)
            rows = slice(first * c, last * c)
            # kernel layouts: out [n, H, c, D] stored as [n, c, H, D], lse [n, H, c] stored as [n, c, H]
            _fold_sinks(block_out.transpose(1, 2).reshape(-1, H, D), block_lse.transpose(1, 2).reshape(-1, H),
                        sinks_total, out[b, rows], None if lse is None else lse[b, rows])
    for lo, hi in ((0, first * c), (last * c, T)):
        if hi > lo:  # the same rows through the dense path: their keys end at query hi - 1
            keys = slice(max(0, offset + lo - window + 1), offset + hi)
            piece_out, piece_lse = dense(q[:, lo:hi], k[:, keys], v[:, keys])
            out[:, lo:hi] = piece_out
            if lse is not None:
                lse[:, lo:hi] = piece_lse
    return (out, lse) if return_lse else out


def _spans(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, first: int, last: int, c: int, P: int,
           offset: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Query blocks first..last-1 of one row as [n, H, c, D] and their key/value spans as [n, Hkv, L, D]: views."""
    n, L = last - first, (P + 1) * c
    H, D = q.shape[1:]
    blocks = q[first * c : last * c].view(n, c, H, D).transpose(1, 2)

    def spans(x: torch.Tensor) -> torch.Tensor:
        start = offset + (first - P) * c  # >= 0: the first block's span starts at key 0 or later
        rows, heads, width = x.stride()
        return x.as_strided((n, x.shape[1], L, x.shape[2]), (c * rows, heads, rows, width),
                            x.storage_offset() + start * rows)

    return blocks, spans(k), spans(v)


def _fold_sinks(out: torch.Tensor, lse: torch.Tensor, sinks_total: torch.Tensor | None, dest: torch.Tensor,
                dest_lse: torch.Tensor | None) -> None:
    """Write ``out`` [t, H, D] into ``dest`` with the sinks' share of the normaliser removed (lse [t, H])."""
    if sinks_total is None:
        dest.copy_(out)
        if dest_lse is not None:
            dest_lse.copy_(lse)
        return
    torch.mul(out, torch.sigmoid(lse - sinks_total).unsqueeze(-1), out=dest)
    if dest_lse is not None:
        torch.logaddexp(lse, sinks_total, out=dest_lse)
