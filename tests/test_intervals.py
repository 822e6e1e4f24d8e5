"""The interval methods against values worked out by hand (FIXTURE inputs), and the bootstrap's determinism."""

import math

import pytest

from lizard_bench.results.intervals import (
    ItemScores,
    bootstrap_interval,
    newcombe_paired_interval,
    paired_difference,
    wilson_interval,
)


def items(values, weights=None, scale="mean"):
    return ItemScores(tuple(f"i{k}" for k in range(len(values))), tuple(values),
                      tuple(weights or [1.0] * len(values)), scale)


def test_wilson_by_hand():
    # 3/10: centre (0.3 + 1.9208/10) / 1.38416 = 0.35548; half 1.96·√(0.021 + 0.0096040)/1.38416 = 0.24773
    assert wilson_interval(3, 10) == pytest.approx((0.1078, 0.6032), abs=1e-4)


def test_newcombe_paired_by_hand():
    # baseline 1 1 1 0 0, current 1 0 0 0 1: both 1, only baseline 2, only current 1, neither 1 (n = 5)
    # p_a = 0.6 with Wilson [0.2307, 0.8824]; p_b = 0.4 with Wilson [0.1176, 0.7693]
    # phi = (1·1 − 2·1) / √(3·2·2·3) = −1/6
    # down = √(0.2824² + 2/6·0.2824·0.2824 + 0.2824²) = 0.2824·√(2 + 1/3) = 0.4313
    # up = √(0.3693² + 2/6·0.3693·0.3693 + 0.3693²) = 0.3693·√(2 + 1/3) = 0.5641
    low, high = newcombe_paired_interval([1, 1, 1, 0, 0], [1, 0, 0, 0, 1])
    assert (low, high) == pytest.approx((-0.2 - 0.4313, -0.2 + 0.5641), abs=2e-4)


def test_newcombe_has_width_where_every_pair_disagrees_the_same_way():
    low, high = newcombe_paired_interval([1] * 10, [0] * 10)
    # both Wilson intervals of 10/10 and 0/10 are 0.2775 wide and phi is 0: down = √2 · 0.2775, up = 0
    assert (low, high) == pytest.approx((-1.0, -1.0 + math.sqrt(0.2775**2 + 0.2775**2)), abs=2e-4)


def test_bootstrap_interval_of_two_items_spans_their_resampled_means():
    # two items: every resample's mean is one of 0, 0.5, 1 (probabilities 1/4, 1/2, 1/4)
    low, high = bootstrap_interval(items([0.0, 1.0]), seed=0)
    assert (low, high) == (0.0, 1.0)


def test_bootstrap_is_deterministic_for_a_seed_and_moves_with_it():
    scores = items([2.1, 2.5, 1.9, 3.0, 2.2, 2.8, 2.4], scale="exp_mean")
    first = bootstrap_interval(scores, seed=7)
    assert bootstrap_interval(scores, seed=7) == first
    assert bootstrap_interval(scores, seed=8) != first
    assert first[0] < scores.score < first[1] and math.log(first[0]) > 1.9 and math.log(first[1]) < 3.0


def test_a_token_weighted_perplexity_is_exp_of_the_weighted_mean():
    scores = items([1.0, 2.0], weights=[3.0, 1.0], scale="exp_mean")
    assert scores.score == pytest.approx(math.exp(1.25))


def test_a_constant_shift_of_every_item_is_a_difference_with_no_doubt():
    base = items([2.0, 2.4, 1.8, 2.9])
    moved = items([v + 0.5 for v in base.values])
    found = paired_difference(base, moved, seed=0)
    assert found.difference == pytest.approx(0.5) and (found.low, found.high) == pytest.approx((0.5, 0.5))
    assert found.excludes_zero and found.method.startswith("paired bootstrap")


def test_pairs_are_matched_by_item_and_need_two_in_common():
    base = ItemScores(("a", "b", "c"), (1.0, 0.0, 1.0), (1.0, 1.0, 1.0))
    other = ItemScores(("c", "a", "z"), (1.0, 0.0, 1.0), (1.0, 1.0, 1.0))
    found = paired_difference(base, other, seed=0)
    assert found.n == 2 and found.difference == pytest.approx(-0.5) and found.method.startswith("Newcombe")
    assert paired_difference(base, ItemScores(("a", "z"), (1.0, 1.0), (1.0, 1.0)), seed=0) is None
