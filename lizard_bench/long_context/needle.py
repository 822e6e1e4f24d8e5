"""Needle-in-a-haystack prompts: one fact stated inside real text, asked for at the end.

Unlike the passkey's content-free filler, the haystack is running text from the suite's
corpus (the Python docs by default), full of numbers and sentences that compete with the
needle. The needle is a line of its own, placed at a line start at the chosen depth.
"""

from __future__ import annotations

from collections.abc import Sequence

from transformers import PreTrainedTokenizerBase

from lizard_bench.long_context.haystack import Filler, assemble
from lizard_bench.long_context.prompt import ProbePrompt, prompt_rng
from lizard_bench.long_context.tokens import encode, leading_special_ids, random_digits

INSTRUCTION = "Somewhere in the following text is a special magic number. Memorize it.\n"
NEEDLE = "The special magic number for {city} is {number}.\n"
QUESTION = "\nWhat is the special magic number for {city} in the text above? The special magic number for {city} is"

CITIES = (
    "Amsterdam", "Athens", "Bangkok", "Barcelona", "Berlin", "Bogota", "Budapest", "Cairo", "Chicago", "Copenhagen",
    "Dublin", "Hanoi", "Helsinki", "Istanbul", "Jakarta", "Kyoto", "Lagos", "Lima", "Lisbon", "London", "Madrid",
    "Manila", "Melbourne", "Montreal", "Mumbai", "Nairobi", "Oslo", "Paris", "Prague", "Santiago", "Seoul",
    "Stockholm", "Sydney", "Tokyo", "Toronto", "Vienna", "Warsaw", "Zurich",
)


def needle_prompts(
    tokenizer: PreTrainedTokenizerBase,
    haystack: Filler,
    *,
    lengths: Sequence[int],
    depths: Sequence[float],
    trials: int,
    seed: int,
    number_digits: int = 7,
) -> list[ProbePrompt]:
    """``trials`` prompts per (length, depth) cell, each with its own city, number and haystack excerpt."""
    prefix = leading_special_ids(tokenizer) + encode(tokenizer, INSTRUCTION)
    prompts = []
    for length in lengths:
        for depth in depths:
            for trial in range(trials):
                rng = prompt_rng(seed, "needle", length, depth, trial)
                city = rng.choice(CITIES)
                number = random_digits(rng, number_digits)
                built = assemble(
                    prefix=prefix,
                    filler=haystack,
                    start_segment=rng.randrange(len(haystack.segments)),
                    inserts=[(depth, encode(tokenizer, NEEDLE.format(city=city, number=number)))],
                    suffix=encode(tokenizer, QUESTION.format(city=city)),
                    length=length,
                )
                prompts.append(ProbePrompt(
                    input_ids=built.input_ids,
                    answer=number,
                    cell=(length, depth),
                    trial=trial,
                    details={
                        "prompt_tokens": len(built.input_ids),
                        "needle_position": built.insert_positions[0],
                        "placed_depth": built.depths[0],
                        "filler_tokens": built.filler_tokens,
                        "haystack_repeats": built.filler_tokens > haystack.total_tokens,
                    },
                ))
    return prompts
