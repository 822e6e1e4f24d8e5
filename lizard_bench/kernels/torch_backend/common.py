"""Small helpers shared by the PyTorch kernels: accumulation dtype, single-copy layout changes, segmented output."""

from __future__ import annotations

import torch


def accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    """float32 for every input dtype except float64, which keeps float64.

    Half-precision inputs must accumulate in float32 (docs/design.md §3); float64 inputs stay
    float64 so that ``torch.autograd.gradcheck`` sees an exact function.
    """
    return torch.float64 if dtype == torch.float64 else torch.float32


def as_dtype(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``x`` in ``dtype``: ``x`` itself when it already is.

    Why not plain ``x.to(dtype)``: even when it returns ``x`` it is a dispatched call (~2 µs on a
    laptop-class CPU), and a decode step makes dozens per layer for every token.
    """
    return x if x.dtype == dtype else x.to(dtype)


def contiguous_as(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``x`` cast to ``dtype`` and made contiguous in a single copy.

    ``Tensor.to`` ignores ``memory_format`` when the dtype already matches (it returns
    ``x`` itself), so a plain ``to(...).contiguous()`` on a permuted half tensor would
    copy twice; this copies once in both cases.
    """
    return x.to(dtype, memory_format=torch.contiguous_format).contiguous()


def needs_grad(*tensors: torch.Tensor | None) -> bool:
    """Whether autograd will record an op on ``tensors`` (grad mode on and one of them requires grad)."""
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


class SegmentedOutput:
    """Collects per-segment results into one [B, T, ...] output, segment after segment along dim 1.

    Without autograd each segment is copied straight into a preallocated output, so no
    list of pieces stays alive and there is no final concatenation: at 16K tokens the
    pieces plus the concatenation doubled the window op's page faults. With autograd the
    pieces are concatenated instead, because slice-assigning into one buffer would make
    every backward step copy the whole gradient.
    """

    def __init__(self, shape: tuple[int, ...], dtype: torch.dtype, device, *inputs: torch.Tensor | None) -> None:
        self.differentiable = needs_grad(*inputs)
        self.shape, self.dtype, self.filled = shape, dtype, 0
        self.pieces: list[torch.Tensor] = []
        self.out = None if self.differentiable else torch.empty(shape, dtype=dtype, device=device)

    def slot(self, length: int) -> torch.Tensor | None:
        """Without autograd, the next ``length`` positions of the output itself ([B, length, ...], a view) for the
        caller to write into (they count as added); with autograd None (the caller then calls :meth:`add`)."""
        if self.out is None:
            return None
        dest = self.out[:, self.filled : self.filled + length]
        self.filled += length
        return dest

    def add(self, piece: torch.Tensor, length: int) -> None:
        """Append the next ``length`` positions.

        ``piece`` is [B, ...] whose trailing dims, read in row-major order, are
        [t, *shape[2:]] with t >= length (sequence and heads may be split over several
        dims and strided arbitrarily; positions past ``length`` are padding and dropped).
        """
        B, rest = piece.shape[0], self.shape[2:]
        if self.out is None:
            self.pieces.append(piece.reshape(B, -1, *rest)[:, :length])
        else:
            dest = self.out[:, self.filled : self.filled + length]
            if piece[0].numel() == dest[0].numel():
                dest.view(piece.shape).copy_(piece)  # one strided pass, no intermediate
            else:
                dest.copy_(piece.reshape(B, -1, *rest)[:, :length])
        self.filled += length

    def result(self) -> torch.Tensor:
        if self.out is not None:
            return self.out
        out = torch.cat(self.pieces, dim=1) if len(self.pieces) > 1 else self.pieces[0].contiguous()
        return out.to(self.dtype)
