"""Scoring a generated continuation against a numeric answer.

Every generation probe here asks for a number (a passkey, a magic number, a value), so one
rule serves them all and keeps their scores comparable:

    a continuation is correct when the FIRST run of ASCII digits in it equals the answer.

Why this rule rather than "starts with" or "contains": a model may restate the question
("The pass key is 71432") or add a leading space, which is fine; but a model that emits a
longer number (``714321``), a shorter one (``7143``), or guesses several numbers hoping one
matches is wrong. Separators inside the number (``71,432``, ``7 1432``) count as wrong: the
answer was shown without them.
"""

from __future__ import annotations

import re

_DIGIT_RUN = re.compile(r"[0-9]+")


def first_number(text: str) -> str | None:
    """The first run of ASCII digits in ``text``, or None when there is none."""
    match = _DIGIT_RUN.search(text)
    return match.group(0) if match else None


def exact_match(generated: str, answer: str) -> bool:
    """True when the first digit run of ``generated`` is exactly ``answer`` (see the module docstring)."""
    if not answer.isdigit() or not answer.isascii():
        raise ValueError(f"answers must be ASCII digit strings, got {answer!r}")
    return first_number(generated) == answer
