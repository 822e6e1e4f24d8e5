"""Windows for length-extrapolation perplexity: the same target tokens, more and more context.

For every length L the model reads the L tokens that *end* at the same point and is scored
on the same final ``tail`` tokens. Perplexity@L therefore differs between lengths only in
how much context precedes identical targets: a model that uses (or at least tolerates) long
context keeps it flat or falling; one that breaks past its training or window length rises.
Scoring all tokens of each window instead would mix in early positions with little context
and different text per length. Identical targets also let two lengths be compared token by
token (``context_gain@L``, :mod:`lizard_bench.long_context.paired`).

Windows come from the held-out split only (the train split is what distillation saw), so a
length longer than the held-out text is reported as unavailable, not padded with train text.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class WindowPlan:
    """Where the scored windows end, and how many tokens of each window are scored."""

    ends: list[int]  # exclusive end offsets into the token stream, one per window
    tail: int | None  # tokens scored at the end of each window; None: all but the first

    def window(self, end: int, length: int) -> tuple[int, int]:
        return end - length, end

    def scored(self, length: int) -> int:
        return length - 1 if self.tail is None else min(self.tail, length - 1)


def plan_windows(available: int, lengths: list[int], tail: int | None, windows: int) -> WindowPlan:
    """Up to ``windows`` window ends that leave room for the longest length that fits in ``available`` tokens.

    Successive windows end ``tail`` tokens apart (so their scored tails are disjoint and
    adjacent), or a whole longest window apart when every token is scored.
    """
    fitting = [length for length in lengths if length <= available]
    if not fitting or windows < 1:
        return WindowPlan(ends=[], tail=tail)
    longest = max(fitting)
    step = tail if tail is not None else longest
    count = min(windows, (available - longest) // step + 1)
    return WindowPlan(ends=[longest + i * step for i in range(count)], tail=tail)
