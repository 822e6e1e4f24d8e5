"""Checking task options from a suite file, so a wrong value fails before any model time is spent.

The runner already refuses unknown option *names*; these helpers refuse wrong *values*
(``depths: [50]`` meaning 50 % would otherwise silently place every needle at the end),
with a message naming the task and option.
"""

from __future__ import annotations

from typing import Any

from lizard_bench.errors import InputError


class OptionError(InputError, ValueError):
    """A task option with a value of the wrong kind; the message names the option and what it needs."""


def int_list(options: dict[str, Any], task: str, key: str, *, minimum: int = 1, allow_empty: bool = False) -> list[int]:
    value = options[key]
    if not isinstance(value, list) or not all(_is_int(v) and v >= minimum for v in value):
        raise OptionError(f"{task}.{key} must be a list of integers >= {minimum}, got {value!r}")
    _no_duplicates(value, task, key)
    if not value and not allow_empty:
        raise OptionError(f"{task}.{key} must not be empty")
    return list(value)


def fraction_list(options: dict[str, Any], task: str, key: str) -> list[float]:
    value = options[key]
    if not isinstance(value, list) or not value or not all(_is_number(v) and 0 <= v <= 1 for v in value):
        raise OptionError(f"{task}.{key} must be a non-empty list of fractions in [0, 1] (0.5 = middle), got {value!r}")
    _no_duplicates([float(v) for v in value], task, key)
    return [float(v) for v in value]


def positive_int(options: dict[str, Any], task: str, key: str, *, allow_none: bool = False) -> int | None:
    value = options[key]
    if value is None and allow_none:
        return None
    if not _is_int(value) or value < 1:
        raise OptionError(f"{task}.{key} must be a positive integer{' or null' if allow_none else ''}, got {value!r}")
    return value


def non_negative_int(options: dict[str, Any], task: str, key: str) -> int:
    value = options[key]
    if not _is_int(value) or value < 0:
        raise OptionError(f"{task}.{key} must be an integer >= 0, got {value!r}")
    return value


def positive_number(options: dict[str, Any], task: str, key: str) -> float:
    value = options[key]
    if not _is_number(value) or value <= 0:
        raise OptionError(f"{task}.{key} must be a number > 0, got {value!r}")
    return float(value)


def int_range(options: dict[str, Any], task: str, key: str) -> tuple[int, int]:
    value = options[key]
    if not (isinstance(value, list) and len(value) == 2 and all(_is_int(v) and v >= 1 for v in value)
            and value[0] <= value[1]):
        raise OptionError(f"{task}.{key} must be [low, high] with 1 <= low <= high, got {value!r}")
    return value[0], value[1]


def choice(options: dict[str, Any], task: str, key: str, allowed: tuple[str, ...]) -> str:
    value = options[key]
    if value not in allowed:
        raise OptionError(f"{task}.{key} must be one of {', '.join(allowed)}, got {value!r}")
    return value


def choice_list(options: dict[str, Any], task: str, key: str, allowed: tuple[str, ...]) -> list[str]:
    value = options[key]
    if not isinstance(value, list) or not value or not all(v in allowed for v in value):
        raise OptionError(f"{task}.{key} must be a non-empty list drawn from {', '.join(allowed)}, got {value!r}")
    _no_duplicates(value, task, key)
    return list(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _no_duplicates(values: list, task: str, key: str) -> None:
    if len(set(values)) != len(values):
        raise OptionError(f"{task}.{key} lists a value twice: {values!r}")
