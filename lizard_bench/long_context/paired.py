"""Paired comparison of two context lengths on the same target tokens: the context gain.

Perplexity@L and perplexity@ref are each noisy mostly because the targets are hard or easy,
and both read the *same* targets. Differencing per token removes that shared part, so a
small real gain from longer context shows up where two unpaired error bars would overlap.
``context_gain = ppl(L) / ppl(ref) = exp(mean(nll_L − nll_ref))``: below 1, the extra
context helped; about 1, it was ignored (what a model that only uses its softmax window does).

Tokens of one window share their context and are correlated, so the per-token standard error
is optimistic: records take their interval from a bootstrap over windows, and keep the
per-token one in their details beside it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from lizard_bench.long_context.summary import Z_95, mean_stderr


@dataclass(frozen=True)
class ContextGain:
    """ppl(L)/ppl(ref) on shared targets, with what its uncertainty rests on."""

    mean_nll_difference: float  # mean over shared tokens of nll_L − nll_ref (nats)
    token_stderr: float | None  # tokens as the samples
    window_stderr: float | None  # window means as the samples (windows are clusters of tokens)
    n_tokens: int
    n_windows: int

    @property
    def ratio(self) -> float:
        return math.exp(self.mean_nll_difference)

    @property
    def stderr(self) -> float | None:
        """Delta method on the exp scale: se(exp(x)) ≈ exp(x) · se(x), per-token se."""
        return None if self.token_stderr is None else self.ratio * self.token_stderr

    def interval(self, z: float = Z_95) -> tuple[float | None, float | None]:
        """exp(mean ± z·se): on the ratio scale, so it is asymmetric around the ratio and stays positive."""
        if self.token_stderr is None:
            return None, None
        spread = z * self.token_stderr
        return math.exp(self.mean_nll_difference - spread), math.exp(self.mean_nll_difference + spread)

    def details(self) -> dict[str, Any]:
        low, high = self.interval()
        return {"mean_nll_difference": self.mean_nll_difference, "mean_nll_difference_stderr": self.token_stderr,
                "window_stderr": self.window_stderr, "n_tokens": self.n_tokens, "n_windows": self.n_windows,
                "token_ci_low": low, "token_ci_high": high}


def context_gain(longer: Sequence[Sequence[float]], reference: Sequence[Sequence[float]]) -> ContextGain:
    """The paired gain of ``longer`` over ``reference``: per-window lists of per-target NLLs.

    Window ``i`` of both lists ends at the same token, so their targets line up from the end;
    when one length scored more tokens than the other (``tail_tokens: null``), only the
    shared final targets are compared.
    """
    if len(longer) != len(reference) or not longer:
        raise ValueError(f"need the same windows at both lengths, got {len(longer)} and {len(reference)}")
    per_window = [_shared_differences(a, b) for a, b in zip(longer, reference, strict=True)]
    tokens = [d for window in per_window for d in window]
    return ContextGain(
        mean_nll_difference=sum(tokens) / len(tokens),
        token_stderr=mean_stderr(tokens),
        window_stderr=mean_stderr([sum(window) / len(window) for window in per_window]),
        n_tokens=len(tokens),
        n_windows=len(per_window),
    )


def _shared_differences(longer: Sequence[float], reference: Sequence[float]) -> list[float]:
    shared = min(len(longer), len(reference))
    if shared == 0:
        raise ValueError("a window has no scored tokens")
    return [a - b for a, b in zip(longer[-shared:], reference[-shared:], strict=True)]
