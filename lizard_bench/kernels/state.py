"""The recurrent state of gated linear attention, carried between prefill pieces and decode steps."""

from __future__ import annotations

from typing import NamedTuple

import torch


class GLAState(NamedTuple):
    """Per-head state: S [B, H, K, V] (gated sum of k vᵀ) and z [B, H, K] (gated sum of k).

    z is the normaliser's running sum; keeping it beside S is what lets a prefill in
    pieces, or token-by-token decoding, reproduce a one-shot prefill exactly.
    Both are float32 whatever the input dtype.
    """

    S: torch.Tensor
    z: torch.Tensor
