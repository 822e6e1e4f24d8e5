"""One strict loader for settings: a (nested) dataclass from a mapping, checked against its type hints.

:func:`build` reads the field types (bool, int, float, str, ``Literal``, ``X | None``, lists,
tuples, ``dict[str, X]``, nested dataclasses, enums) and refuses unknown keys, wrong types (a
bool is not an int; an int is a float) and missing required fields, naming the dotted key and,
given each key's line (:func:`lizard_bench.config.read_yaml`), the file and line. A range check is field
metadata (``field(default=1, metadata=rule(lambda v: v >= 1, "must be >= 1"))``, or the common
:func:`at_least` and :func:`distinct`); a check across fields belongs in the caller or the
dataclass's ``__post_init__``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

from lizard_bench.errors import ConfigError

# Only the standard library's dataclasses and typing: linearize/config.py uses this module, and a saved
# model directory carries both as its remote code (linearize/remote_code.py), which transformers
# accepts only when every import is installed.
T = TypeVar("T")
KeyPath = tuple[Any, ...]
_RULE = "lizard_bench.typed_config.rule"
_UNION = type(int | None)  # what `X | Y` annotations are at run time
_QUOTE = " (YAML reads bare no/yes as booleans: quote it)"


def rule(test: Any, says: str) -> dict[str, Any]:
    """Field metadata: a given value that ``test`` refuses is the error '<key> <says>, got <value>'."""
    return {_RULE: (test, says)}


def at_least(low: float) -> dict[str, Any]:
    """Field metadata: a number >= ``low`` (or null, where the type allows it)."""
    return rule(lambda value: value is None or value >= low, f"must be >= {low:g}")


def distinct(low: float | None = None, high: float | None = None, *, empty: bool = False) -> dict[str, Any]:
    """Field metadata: a list (or null) of distinct items within [low, high] where given; non-empty unless ``empty``."""
    within = "" if low is None else f" >= {low:g}" if high is None else f" in [{low:g}, {high:g}]"

    def test(items: Any) -> bool:
        return items is None or ((empty or len(items) > 0) and len(set(items)) == len(items) and all(
            (low is None or item >= low) and (high is None or item <= high) for item in items))
    return rule(test, f"must be a{'' if empty else ' non-empty'} list of distinct values{within}")


class _Problem(Exception):
    def __init__(self, path: KeyPath, text: str) -> None:
        super().__init__(text)
        self.path, self.text = path, text


def dotted(path: KeyPath) -> str:
    """``('stage1', 'lr')`` -> ``stage1.lr``; ``('betas', 1)`` -> ``betas[1]``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def build(cls: type[T], data: Any, *, where: str = "", lines: dict[KeyPath, int] | None = None,
          base: T | None = None, noun: str = "key", error: type[Exception] = ConfigError, at: KeyPath = ()) -> T:
    """``cls`` from ``data``, every value checked; keys not in ``data`` keep ``base``'s values (or the defaults).

    A mapping for a nested dataclass field is applied over that field's current value, so
    ``stage1: {tokens: 5}`` keeps stage 1's learning rate. Errors are ``error`` (a
    :class:`ConfigError` unless told), one line: ``where[:line]: what is wrong``. ``at`` is where
    ``data`` sits in its file (``('task_options', 'passkey')``): errors name keys from there.
    """
    try:
        return _dataclass(cls, data, at, base, noun)
    except _Problem as problem:
        line = next((lines[problem.path[:n]] for n in range(len(problem.path), 0, -1)
                     if lines and problem.path[:n] in lines), None)
        place = f"{where}:{line}: " if line is not None else (f"{where}: " if where else "")
        raise error(place + problem.text) from None


def _name(path: KeyPath) -> str:
    return f"'{dotted(path)}'" if path else "the top level"


def _dataclass(cls: type, data: Any, path: KeyPath, base: Any, noun: str) -> Any:
    if not isinstance(data, dict):
        raise _Problem(path, f"{_name(path)} must be a mapping of settings, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for key in data:
        if key not in fields:
            raise _Problem((*path, key), f"unknown {noun} '{dotted((*path, key))}' (known: "
                                         f"{', '.join(sorted(fields)) or 'none'})")
    hints = get_type_hints(cls)
    values: dict[str, Any] = {}
    for name, spec in fields.items():
        here = (*path, name)
        if name in data:
            current = getattr(base, name) if base is not None else _default(spec)
            value = _value(hints[name], data[name], here, current)
            if _RULE in spec.metadata and not spec.metadata[_RULE][0](value):
                raise _Problem(here, f"{_name(here)} {spec.metadata[_RULE][1]}, got {value!r}")
            values[name] = value
        elif base is not None:
            values[name] = getattr(base, name)
        elif spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING:
            raise _Problem(here, f"missing required {noun} '{dotted(here)}'")
    try:
        return cls(**values)
    except ValueError as exc:  # a __post_init__ check
        raise _Problem(path, f"{dotted(path)}: {exc}" if path else str(exc)) from None


def _default(spec: dataclasses.Field) -> Any:
    if spec.default is not dataclasses.MISSING:
        return spec.default
    return spec.default_factory() if spec.default_factory is not dataclasses.MISSING else None


def _value(kind: Any, value: Any, path: KeyPath, current: Any = None) -> Any:
    origin, args = get_origin(kind), get_args(kind)
    if kind is Any:
        return value
    if origin in (Union, _UNION):
        if value is None and type(None) in args:
            return None
        options = [option for option in args if option is not type(None)]
        problems = []
        for option in options:
            try:
                return _value(option, value, path, current)
            except _Problem as problem:
                problems.append(problem)
        if len(options) == 1 and problems[0].path != path:
            raise problems[0]  # a problem inside the value (a nested key, a list item)
    elif origin is Literal:
        if any(value == choice and type(value) is type(choice) for choice in args):
            return value
        hint = _QUOTE if isinstance(value, bool) and not any(isinstance(c, bool) for c in args) else ""
        raise _Problem(path, f"{_name(path)} must be one of {', '.join(map(str, args))}, got {value!r}{hint}")
    elif dataclasses.is_dataclass(kind):
        return _dataclass(kind, value, path, current if isinstance(current, kind) else None, "key")
    elif origin in (list, tuple) or kind in (list, tuple):
        if isinstance(value, str) and args[:1] == (str,):
            value = [value]  # a single name for a list of names
        if isinstance(value, list | tuple):
            if origin is tuple and args and args[-1] is not Ellipsis:
                if len(value) == len(args):
                    return tuple(_value(a, v, (*path, i)) for i, (a, v) in enumerate(zip(args, value, strict=True)))
            else:
                items = [_value(args[0] if args else Any, v, (*path, i)) for i, v in enumerate(value)]
                return tuple(items) if origin is tuple or kind is tuple else items
    elif origin is dict or kind is dict:
        if isinstance(value, dict):
            key_kind, item_kind = args or (Any, Any)
            for key in value:
                if key_kind is str and not isinstance(key, str):
                    raise _Problem((*path, key), f"{_name(path)} must have names as keys, got {key!r}")
            return {key: _value(item_kind, item, (*path, key)) for key, item in value.items()}
    elif isinstance(kind, type) and hasattr(kind, "__members__"):  # an Enum
        try:
            return kind(value)
        except ValueError:
            raise _Problem(path, f"{_name(path)} must be one of {', '.join(str(m.value) for m in kind)}, "
                                 f"got {value!r}") from None
    elif kind is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads '1e-3' (no dot) as a string: it is the number meant
            try:
                return float(value)
            except ValueError:
                pass
    elif kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif isinstance(kind, type) and isinstance(value, kind):
        return value  # str, bool, any other class
    wanted = describe(kind)
    hint = _QUOTE if isinstance(value, bool) and ("string" in wanted or "one of" in wanted) else ""
    raise _Problem(path, f"{_name(path)} must be {wanted}, got {value!r}{hint}")


def describe(kind: Any, plural: bool = False) -> str:
    """What a value of type ``kind`` is, in words ('a list of numbers', 'an integer or null')."""
    origin, args = get_origin(kind), get_args(kind)
    if origin in (Union, _UNION):
        words = [describe(option, plural) for option in args if option is not type(None)]
        return " or ".join(words + (["null"] if type(None) in args else []))
    if origin is Literal:
        return repr(args[0]) if len(args) == 1 else f"one of {', '.join(map(str, args))}"
    if origin in (list, tuple) or kind in (list, tuple):
        if origin is tuple and args and args[-1] is not Ellipsis:
            return f"{'lists' if plural else 'a list'} of {len(args)} ({', '.join(describe(a) for a in args)})"
        return f"{'lists' if plural else 'a list'} of {describe(args[0], True) if args else 'values'}"
    if origin is dict or kind is dict or dataclasses.is_dataclass(kind):
        inner = f" of names to {describe(args[1], True)}" if len(args) == 2 and args[1] is not Any else ""
        return ("mappings" if plural else "a mapping") + inner
    words = {bool: ("true or false", "booleans"), int: ("an integer", "integers"), float: ("a number", "numbers"),
             str: ("a string", "strings")}.get(kind)
    if words:
        return words[plural]
    name = getattr(kind, "__name__", str(kind))
    return f"{name} values" if plural else f"a {name}"
