"""The probes' uncertainty: Wilson intervals of exact-match fractions, the paired context gain of two lengths."""

import math

import pytest

from lizard_bench.long_context import Outcome, ProbePrompt, accuracy_by, context_gain, wilson_interval


@pytest.mark.parametrize(("hits", "trials", "low", "high"), [
    (0, 2, 0.0, 0.658),  # hand-computed with z = 1.96
    (5, 10, 0.237, 0.763),
    (10, 10, 0.722, 1.0),
])
def test_wilson_interval_matches_hand_computed_values(hits, trials, low, high):
    assert wilson_interval(hits, trials) == pytest.approx((low, high), abs=5e-4)


def test_wilson_interval_refuses_impossible_counts():
    with pytest.raises(ValueError, match="hits"):
        wilson_interval(3, 2)


def test_every_accuracy_carries_its_wilson_interval():
    prompt = ProbePrompt(input_ids=[1, 2, 3], answer="7", cell=(64, 0.5))
    outcomes = [Outcome(prompt, "7" if i < 5 else "0", correct=i < 5) for i in range(10)]
    (value,) = accuracy_by(outcomes, lambda o: ("exact_match", {}))
    assert value.value == 0.5 and value.details["trials"] == 10
    assert value.interval == pytest.approx((0.237, 0.763), abs=5e-4) and value.n == 10


# FIXTURE: invented per-token NLLs (nats) of two windows, read with the reference and with a longer context
REFERENCE = [[2.0, 1.0, 3.0], [1.5, 2.5, 0.5]]
LONGER = [[1.5, 1.0, 2.0], [1.5, 2.0, 1.0]]


def test_context_gain_matches_a_hand_computation():
    # differences: window 1 [-0.5, 0, -1], window 2 [0, -0.5, 0.5]; mean -0.25
    # token deviations from the mean squared: 1.375 in all, sample variance 1.375 / 5 = 0.275
    # window means -0.5 and 0: sample variance 0.125
    gain = context_gain(LONGER, REFERENCE)
    token_se = math.sqrt(0.275 / 6)
    assert gain.mean_nll_difference == pytest.approx(-0.25)
    assert gain.token_stderr == pytest.approx(token_se)
    assert gain.window_stderr == pytest.approx(math.sqrt(0.125 / 2))
    assert (gain.n_tokens, gain.n_windows) == (6, 2)
    assert gain.ratio == pytest.approx(math.exp(-0.25))  # 0.7788: the longer context helped
    assert gain.stderr == pytest.approx(math.exp(-0.25) * token_se)
    assert gain.interval() == pytest.approx((math.exp(-0.25 - 1.96 * token_se), math.exp(-0.25 + 1.96 * token_se)))
    details = gain.details()
    assert details["token_ci_low"] < gain.ratio < details["token_ci_high"] and details["n_tokens"] == 6


def test_context_gain_compares_only_the_shared_final_targets():
    """A longer window that scored more tokens (tail_tokens: null) is cut to the targets both scored."""
    longer = [[9.0, *window] for window in LONGER]  # an extra, earlier target per window
    assert context_gain(longer, REFERENCE) == context_gain(LONGER, REFERENCE)


def test_context_gain_of_one_token_has_no_stderr_or_interval():
    gain = context_gain([[1.0]], [[2.0]])
    assert gain.ratio == pytest.approx(math.exp(-1.0))
    assert gain.stderr is None and gain.interval() == (None, None)


def test_context_gain_needs_the_same_windows_at_both_lengths():
    with pytest.raises(ValueError, match="same windows"):
        context_gain(LONGER, REFERENCE[:1])
