"""The softmax scale every attention kernel uses when the caller gives none."""

from __future__ import annotations

import math


def softmax_scale(head_dim: int, scale: float | None = None) -> float:
    """``scale`` as a float, or the default 1/sqrt(head_dim) when it is None."""
    return 1.0 / math.sqrt(head_dim) if scale is None else float(scale)
