"""Padded batches in a linearized layer: moving each row's padding to its front.

A recurrent state is indifferent to where padding sits as long as pad tokens add nothing
(zero features, no decay). A sliding window is not: it counts positions, so a pad in the
middle of a row would push real keys out of the window. Sorting each row stably so that its
padding comes first (real tokens keep their order) turns any padding into left padding; the
window then spans the same real keys as in the unpadded row, and the kernels only need to
hide the leading pad keys (their key mask).
"""

from __future__ import annotations

import torch


def pads_first(real: torch.Tensor) -> torch.Tensor:
    """[B, T] bool (True = real token) -> [B, T] indices: each row's pads first, then its real tokens in order."""
    return torch.sort(real.to(torch.int8), dim=1, stable=True).indices


def reals_first(real: torch.Tensor) -> torch.Tensor:
    """[B, T] bool -> [B, T] indices: each row's real tokens first, in order, then its pads."""
    return torch.sort((~real).to(torch.int8), dim=1, stable=True).indices


def take(x: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """Reorder x [B, T, ...] along dim 1 by ``order`` [B, T'] (x[b, order[b, t]])."""
    index = order.view(*order.shape, *([1] * (x.dim() - 2))).expand(*order.shape, *x.shape[2:])
    return x.gather(1, index)


def restore(x: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """Undo ``take(·, order)``: x [B, T, ...] back to the original positions."""
    return take(x, torch.argsort(order, dim=1))


def real_positions(real: torch.Tensor, before: torch.Tensor) -> torch.Tensor:
    """[B, T] index of each token among its row's real tokens (counting ``before`` [B] earlier ones); pads get -1."""
    position = before[:, None] + real.long().cumsum(dim=1) - 1
    return position.masked_fill(~real, -1)
