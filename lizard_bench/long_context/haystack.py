"""Filler text and prompt assembly at an exact token length.

A probe prompt is ``prefix + filler (with inserts spliced in) + suffix``, where the inserts
are the needle(s) and the filler is cut to exactly the number of tokens that makes the whole
prompt ``length`` tokens long. Filler is held as token *segments* (sentences or lines), and
inserts go only at segment starts, so a needle never lands in the middle of a word; the
depth actually used is the segment start nearest the asked one, and is recorded.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

from transformers import PreTrainedTokenizerBase

from lizard_bench.long_context.tokens import encode_many

# The classic passkey filler: content-free sentences, so the only information in the
# context is the passkey itself.
REPEATED_SENTENCES = (
    "The grass is green.",
    "The sky is blue.",
    "The sun is yellow.",
    "Here we go.",
    "There and back again.",
)


@dataclass(frozen=True)
class Filler:
    """Filler as token segments, read in order from any starting segment and wrapping around.

    Wrapping lets a short source fill a long context (its text then repeats; ``take`` says
    so), which keeps every configured length runnable on any corpus.
    """

    segments: tuple[tuple[int, ...], ...]
    source: str

    def __post_init__(self) -> None:
        if not self.segments or not any(self.segments):
            raise ValueError(f"filler {self.source!r} has no tokens")

    @property
    def total_tokens(self) -> int:
        return sum(len(s) for s in self.segments)

    def take(self, count: int, start_segment: int) -> tuple[list[int], list[int]]:
        """``count`` tokens from segment ``start_segment`` on, and the offsets where segments start.

        The offsets include 0 and ``count`` (the end), so an insert can always go first or last.
        """
        tokens: list[int] = []
        starts: list[int] = []
        index = start_segment % len(self.segments)
        while len(tokens) < count:
            segment = self.segments[index]
            if segment:
                starts.append(len(tokens))
                tokens.extend(segment[: count - len(tokens)])
            index = (index + 1) % len(self.segments)
        if not starts or starts[0] != 0:
            starts.insert(0, 0)
        if starts[-1] != count:
            starts.append(count)
        return tokens, starts


def repeated_filler(tokenizer: PreTrainedTokenizerBase, sentences: Sequence[str] = REPEATED_SENTENCES) -> Filler:
    """The classic filler: ``sentences`` cycled, each a segment with the space that joins it."""
    return Filler(tuple(tuple(ids) for ids in encode_many(tokenizer, [" " + s for s in sentences])), "repeat")


def text_filler(tokenizer: PreTrainedTokenizerBase, text: str, source: str) -> Filler:
    """Filler from running text (a corpus), one segment per line with its newline kept."""
    lines = [line for line in text.splitlines(keepends=True) if line]
    return Filler(tuple(tuple(ids) for ids in encode_many(tokenizer, lines)), source)


@dataclass(frozen=True)
class Assembled:
    """A prompt's ids, where each insert begins (token index in the prompt) and at what depth."""

    input_ids: list[int]
    insert_positions: list[int]
    depths: list[float]  # fraction of the filler before each insert, as actually placed
    filler_tokens: int


def filler_budget(length: int, prefix: Sequence[int], inserts: Sequence[Sequence[int]], suffix: Sequence[int]) -> int:
    """Tokens of filler a ``length``-token prompt has room for; an error when the fixed text alone is longer."""
    fixed = len(prefix) + len(suffix) + sum(len(i) for i in inserts)
    if length < fixed:
        raise ValueError(f"a {length}-token prompt cannot hold this probe's {fixed} tokens of fixed text; "
                         f"use lengths of at least {fixed}")
    return length - fixed


def assemble(
    *,
    prefix: Sequence[int],
    filler: Filler,
    start_segment: int,
    inserts: Sequence[tuple[float, Sequence[int]]],
    suffix: Sequence[int],
    length: int,
) -> Assembled:
    """Build a prompt of exactly ``length`` tokens with each insert at (the segment start nearest) its depth.

    ``inserts`` are (depth in [0, 1], token ids); inserts placed at the same segment start keep
    their given order.
    """
    budget = filler_budget(length, prefix, [ids for _, ids in inserts], suffix)
    tokens, starts = filler.take(budget, start_segment) if budget else ([], [0])
    placed = sorted(((_nearest(starts, depth * budget), order) for order, (depth, _) in enumerate(inserts)))
    input_ids = list(prefix)
    positions = [0] * len(inserts)
    cursor = 0
    for offset, order in placed:
        input_ids.extend(tokens[cursor:offset])
        cursor = offset
        positions[order] = len(input_ids)
        input_ids.extend(inserts[order][1])
    input_ids.extend(tokens[cursor:])
    input_ids.extend(suffix)
    offsets = {order: offset for offset, order in placed}
    depths = [offsets[i] / budget if budget else 0.0 for i in range(len(inserts))]
    return Assembled(input_ids=input_ids, insert_positions=positions, depths=depths, filler_tokens=budget)


def _nearest(starts: list[int], target: float) -> int:
    """The value of the sorted ``starts`` nearest ``target`` (the lower one on a tie)."""
    index = bisect.bisect_left(starts, target)
    if index == 0:
        return starts[0]
    if index == len(starts):
        return starts[-1]
    below, above = starts[index - 1], starts[index]
    return below if target - below <= above - target else above
