"""What a probe prompt is, and where its randomness comes from.

Every random choice for one prompt (the passkey, the filler's starting point, the city, the
pairs) is drawn from a generator seeded by the suite seed *and* the prompt's place in the
grid: the same seed gives the same prompts, a different seed different ones, and adding a
length or capping trials with ``limit`` leaves every other prompt unchanged.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ProbePrompt:
    """One prompt to complete greedily, the number its continuation must start with, and its grid cell."""

    input_ids: list[int]
    answer: str
    cell: tuple[Any, ...]  # the grid point it belongs to, e.g. (length, depth)
    details: dict[str, Any] = field(default_factory=dict)  # facts about this prompt (needle position, ...)
    trial: int = 0  # which prompt of its cell

    @property
    def item(self) -> str:
        """The prompt's name in per-item outcome files, the same in every run with the same seed and grid:
        what pairs the teacher's answer to a prompt with a variant's."""
        return ":".join(format(p, "g") if isinstance(p, float) else str(p) for p in (*self.cell, self.trial))


def prompt_rng(seed: int, probe: str, *point: object) -> random.Random:
    """A generator for one prompt, independent of every other prompt's.

    ``random.Random`` seeded with a string hashes it with SHA-512, so this is stable across
    processes and Python versions (unlike ``hash()``).
    """
    return random.Random(":".join(str(p) for p in (seed, probe, *point)))


def trials_per_cell(trials: int, limit: int | None) -> int:
    """The suite's ``limit`` caps examples per grid cell (the first ones, so quick runs are a prefix of full ones)."""
    return trials if limit is None else max(0, min(trials, limit))
