"""The strict settings loader: nested dataclasses from mappings, every value checked, errors naming the key."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Literal

import pytest

from lizard_bench.config import read_yaml
from lizard_bench.errors import ConfigError, InputError
from lizard_bench.typed_config import at_least, build, distinct, rule


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


@dataclass(frozen=True)
class Inner:
    rate: float = 0.5
    steps: int = field(default=1, metadata=rule(lambda n: n >= 1, "must be >= 1"))


@dataclass
class Outer:
    name: str  # required
    inner: Inner = field(default_factory=lambda: Inner(rate=0.25))
    flag: bool = False
    limit: int | None = None
    mode: Literal["fast", "slow"] = "fast"
    weights: list[float] = field(default_factory=list)
    pair: tuple[int, int] = (0, 0)
    groups: dict[str, list[str]] = field(default_factory=dict)
    colour: Colour = Colour.RED


def test_nested_dataclass_keeps_the_fields_not_given():
    outer = build(Outer, {"name": "a", "inner": {"steps": 3}, "weights": [1, 2.5], "pair": [1, 2],
                          "groups": {"g": "x"}, "colour": "blue", "limit": None})
    assert outer.inner == Inner(rate=0.25, steps=3)  # the field's default, with steps applied over it
    assert outer.weights == [1.0, 2.5] and all(isinstance(w, float) for w in outer.weights)
    assert outer.pair == (1, 2) and outer.groups == {"g": ["x"]} and outer.colour is Colour.BLUE


def test_base_supplies_what_the_mapping_leaves_out():
    first = build(Outer, {"name": "a", "inner": {"rate": 1}})
    second = build(Outer, {"inner": {"steps": 2}}, base=first)
    assert second.name == "a" and second.inner == Inner(rate=1.0, steps=2)


def test_unknown_key_names_its_path_and_the_known_keys():
    with pytest.raises(ConfigError, match=r"^cfg: unknown key 'inner\.stpes' \(known: rate, steps\)$"):
        build(Outer, {"name": "a", "inner": {"stpes": 2}}, where="cfg")


@pytest.mark.parametrize(("data", "message"), [
    ({"inner": {"rate": "fast"}}, r"'inner\.rate' must be a number, got 'fast'"),
    ({"flag": 1}, r"'flag' must be true or false, got 1"),
    ({"limit": True}, r"'limit' must be an integer or null, got True"),  # a bool is not an int
    ({"inner": {"steps": 2.0}}, r"'inner\.steps' must be an integer, got 2\.0"),
    ({"mode": "medium"}, r"'mode' must be one of fast, slow, got 'medium'"),
    ({"weights": [1.0, "x"]}, r"'weights\[1\]' must be a number, got 'x'"),
    ({"weights": 3}, r"'weights' must be a list of numbers, got 3"),
    ({"pair": [1]}, r"'pair' must be a list of 2 \(an integer, an integer\)"),
    ({"groups": {"g": [1]}}, r"'groups\.g\[0\]' must be a string, got 1"),
    ({"colour": "green"}, r"'colour' must be one of red, blue"),
    ({"name": False}, r"quote it"),
    ({"inner": 3}, r"'inner' must be a mapping of settings, got 3"),
    ({"inner": {"steps": 0}}, r"'inner\.steps' must be >= 1, got 0"),
])
def test_wrong_values_name_their_path(data, message):
    with pytest.raises(ConfigError, match=message):
        build(Outer, {"name": "a", **data})


def test_optional_literal_and_float_from_a_yaml_string():
    outer = build(Outer, {"name": "a", "limit": 4, "mode": "slow", "inner": {"rate": "1e-3"}})
    assert (outer.limit, outer.mode, outer.inner.rate) == (4, "slow", 1e-3)
    assert build(Outer, {"name": "a", "limit": None}).limit is None


def test_missing_required_field():
    with pytest.raises(ConfigError, match=r"missing required key 'name'"):
        build(Outer, {})


def test_errors_are_input_errors_and_carry_the_yaml_line(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text("name: a\ninner:\n  rate: 1\n\n  steps: -1\nweights:\n  - 1\n  - no\n")
    data, lines = read_yaml(path)
    with pytest.raises(InputError, match=r"x\.yaml:5: 'inner\.steps' must be >= 1"):
        build(Outer, data, where=str(path), lines=lines)
    data["inner"]["steps"] = 1
    with pytest.raises(ConfigError, match=r"x\.yaml:8: 'weights\[1\]' must be a number, got False"):
        build(Outer, data, where=str(path), lines=lines)
    path.write_text("- a\n")
    with pytest.raises(ConfigError, match=r"x\.yaml:1: the top level must be a mapping"):
        read_yaml(path)


@dataclass(frozen=True)
class Ranged:
    count: int | None = field(default=None, metadata=at_least(1))
    depths: list[float] = field(default_factory=list, metadata=distinct(0, 1, empty=True))
    lengths: list[int] = field(default_factory=lambda: [8], metadata=distinct(2))


def test_shared_rules_and_keys_named_from_where_the_mapping_sits():
    assert build(Ranged, {"count": None, "depths": [0, 1]}) == Ranged(None, [0.0, 1.0], [8])
    at = ("task_options", "probe")
    lines = {(*at, "count"): 3, (*at, "lengths", 1): 5}
    for data, message in [
        ({"count": 0}, r"^suite\.yaml:3: 'task_options\.probe\.count' must be >= 1, got 0$"),
        ({"depths": [0.5, 0.5]}, r"'task_options\.probe\.depths' must be a list of distinct values in \[0, 1\]"),
        ({"lengths": []}, r"'task_options\.probe\.lengths' must be a non-empty list of distinct values >= 2, got \[\]"),
        ({"lengths": [4, "x"]}, r"^suite\.yaml:5: 'task_options\.probe\.lengths\[1\]' must be an integer"),
        ({"cuont": 1}, r"unknown option 'task_options\.probe\.cuont' \(known: count, depths, lengths\)"),
    ]:
        with pytest.raises(ConfigError, match=message):
            build(Ranged, data, where="suite.yaml", lines=lines, at=at, noun="option")
