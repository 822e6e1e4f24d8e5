"""The exact-match rule: the first digit run of the continuation must equal the answer."""

import pytest

from lizard_bench.long_context.scoring import exact_match, first_number


@pytest.mark.parametrize("generated", ["71432", " 71432", "71432.", " 71432. Remember it.", "The pass key is 71432",
                                       "\n71432\n", "71432 is the pass key"])
def test_answers_that_match(generated):
    assert exact_match(generated, "71432")


@pytest.mark.parametrize("generated", ["", " ", "seven", "714321", "7143", "71,432", "7 1432", "1 71432",
                                       "key 17432", "0071432"])
def test_answers_that_do_not_match(generated):
    assert not exact_match(generated, "71432")


def test_first_number_ignores_non_ascii_digits():
    assert first_number("٧١٤ then 42") == "42"
    assert first_number("no digits") is None


def test_answers_must_be_digit_strings():
    with pytest.raises(ValueError, match="digit"):
        exact_match("12", "12a")
