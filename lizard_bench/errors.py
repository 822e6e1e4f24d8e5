"""The one base class for mistakes in a user's input, so the CLI can tell them from bugs.

An :class:`InputError` (a bad config, a missing corpus, a model that cannot be read) is
printed as one line and exits with status 2: the message says what was wrong and what to
do, and a traceback would only hide it. Anything else that escapes is a bug in lizard-bench
and keeps its traceback, so it can be reported and fixed.
"""

from __future__ import annotations


class InputError(Exception):
    """Something the user passed (a flag, a file, a setting) is wrong; the message says how to fix it."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (or its type): what a one-line error quotes of a library's."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class ConfigError(InputError, ValueError):
    """A configuration problem (a suite, a recipe, a method's options), phrased as one line: where and what to fix."""


class UnknownNameError(InputError, KeyError):
    """A task, variant or model name that is not known; a KeyError too, for code that looks names up."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""
