"""Prompt builders: exact target lengths, needles where asked, determinism by seed, limits as prefixes."""

import pytest

from lizard_bench.long_context import (
    assemble,
    assoc_recall_prompts,
    needle_prompts,
    passkey_prompts,
    repeated_filler,
    text_filler,
    trials_per_cell,
)
from lizard_bench.long_context.prompt import prompt_rng
from lizard_bench.long_context.tokens import digits_with_token_count, encode
from tests.long_context.helpers import fixture_corpus, fused_character_tokenizer, needle_in, passkey_in, value_in

TOKENIZER = fused_character_tokenizer()
DEPTHS = [0.0, 0.5, 1.0]


def passkeys(seed=0, trials=2, lengths=(192, 256)):
    return passkey_prompts(TOKENIZER, repeated_filler(TOKENIZER), lengths=list(lengths), depths=DEPTHS,
                           trials=trials, seed=seed)


def needles(seed=0, trials=2, lengths=(320, 448)):
    haystack = text_filler(TOKENIZER, fixture_corpus().text("heldout"), "fixture:heldout")
    return needle_prompts(TOKENIZER, haystack, lengths=list(lengths), depths=DEPTHS, trials=trials, seed=seed)


def test_passkey_prompts_hit_their_length_and_hide_one_key_of_5_to_8_tokens():
    prompts = passkeys()
    assert len(prompts) == 2 * len(DEPTHS) * 2
    for prompt in prompts:
        length, depth = prompt.cell
        assert len(prompt.input_ids) == length == prompt.details["prompt_tokens"]
        text = TOKENIZER.decode(prompt.input_ids)
        assert passkey_in(text) == prompt.answer
        assert 5 <= len(encode(TOKENIZER, prompt.answer)) <= 8
        assert text.endswith("The pass key is")
        # placed at the sentence start nearest the depth: at most half the longest filler sentence away
        off_by = abs(prompt.details["placed_depth"] - depth) * prompt.details["filler_tokens"]
        assert off_by <= len(" There and back again.") / 2


def test_needle_position_follows_depth():
    by_depth = {}
    for prompt in needles(trials=1, lengths=(448,)):
        by_depth[prompt.cell[1]] = prompt.details["needle_position"]
        assert len(prompt.input_ids) == 448
        assert needle_in(TOKENIZER.decode(prompt.input_ids)) == prompt.answer
    assert by_depth[0.0] < by_depth[0.5] < by_depth[1.0]


def test_same_seed_same_prompts_other_seed_other_prompts():
    for build in (passkeys, needles):
        first, again, other = build(seed=0), build(seed=0), build(seed=1)
        assert [p.input_ids for p in first] == [p.input_ids for p in again]
        assert [p.answer for p in first] == [p.answer for p in again]
        assert [p.answer for p in first] != [p.answer for p in other]
        assert [p.input_ids for p in first] != [p.input_ids for p in other]


def test_limit_keeps_the_first_trials_of_each_cell():
    full, capped = passkeys(trials=3), passkeys(trials=trials_per_cell(3, limit=1))
    first_of_each_cell = {p.cell: p.input_ids for p in reversed(full)}
    assert {p.cell: p.input_ids for p in capped} == first_of_each_cell
    assert trials_per_cell(5, None) == 5 and trials_per_cell(5, 2) == 2


def test_adding_a_length_leaves_other_prompts_unchanged():
    short = passkeys(lengths=(192,))
    both = passkeys(lengths=(192, 256))
    assert [p.input_ids for p in short] == [p.input_ids for p in both if p.cell[0] == 192]


def test_too_short_a_length_is_an_error_naming_the_minimum():
    with pytest.raises(ValueError, match="at least"):
        passkeys(lengths=(64,))


def test_assoc_recall_pairs_alone_and_spread_to_a_length():
    alone = assoc_recall_prompts(TOKENIZER, repeated_filler(TOKENIZER), pairs=[2, 6], lengths=[None], trials=3,
                                 seed=0)
    for prompt in alone:
        text = TOKENIZER.decode(prompt.input_ids)
        assert value_in(text) == prompt.answer
        assert text.count(": ") == prompt.cell[0]
    spread = assoc_recall_prompts(TOKENIZER, repeated_filler(TOKENIZER), pairs=[3], lengths=[400], trials=2, seed=0)
    for prompt in spread:
        assert len(prompt.input_ids) == 400
        assert value_in(TOKENIZER.decode(prompt.input_ids)) == prompt.answer


def test_assemble_places_depth_0_after_the_prefix_and_depth_1_before_the_suffix():
    filler = repeated_filler(TOKENIZER)
    prefix, needle, suffix = encode(TOKENIZER, "P:"), encode(TOKENIZER, "[N]"), encode(TOKENIZER, "?")
    for depth, expected in ((0.0, len(prefix)), (1.0, 50 - len(suffix) - len(needle))):
        built = assemble(prefix=prefix, filler=filler, start_segment=0, inserts=[(depth, needle)], suffix=suffix,
                         length=50)
        assert len(built.input_ids) == 50
        assert built.insert_positions == [expected]
        assert built.input_ids[expected : expected + len(needle)] == needle


def test_a_filler_shorter_than_the_context_wraps_around():
    filler = text_filler(TOKENIZER, "short line\n", "tiny")
    tokens, starts = filler.take(25, start_segment=0)
    assert TOKENIZER.decode(tokens) == ("short line\n" * 3)[:25]
    assert starts == [0, 11, 22, 25]


def test_passkeys_have_the_asked_token_count_for_tokenizers_that_group_digits():
    class PairsOfDigits:
        """A tokenizer that reads digits two at a time (as some BPE vocabularies do)."""

        def __call__(self, text, add_special_tokens=False):
            return {"input_ids": [0] * ((len(text) + 1) // 2)}

    rng = prompt_rng(0, "test")
    for tokens in range(5, 9):
        key = digits_with_token_count(rng, PairsOfDigits(), tokens)
        assert (len(key) + 1) // 2 == tokens
