"""Multi-key associative recall prompts: many key–value lines, one key asked for.

Where the passkey asks a model to keep one fact across a long distance, this asks it to
keep *many* facts apart, which is what a fixed-size recurrent state finds hard (the
Zoology/MQAR line of work): accuracy is reported per number of pairs. Keys are two-word
names, values distinct numbers. Optionally the pairs are spread evenly through filler so
that the prompt is a given number of tokens long (recall across distance and load at once).
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from transformers import PreTrainedTokenizerBase

from lizard_bench.long_context.haystack import Filler, assemble
from lizard_bench.long_context.prompt import ProbePrompt, prompt_rng
from lizard_bench.long_context.tokens import encode, encode_many, leading_special_ids, random_digits

INSTRUCTION = "Remember the value of each key.\n"
PAIR = "{key}: {value}\n"
SPREAD_PAIR = "\n{key}: {value}\n"  # inside filler sentences a pair needs its own line
QUESTION = "\nWhat is the value of {key}? The value of {key} is"

ADJECTIVES = (
    "amber", "bold", "brisk", "calm", "crimson", "dusty", "eager", "faint", "gentle", "golden", "hollow", "icy",
    "jolly", "lively", "lunar", "misty", "noble", "olive", "pale", "quiet", "rapid", "rusty", "silent", "silver",
    "solar", "stormy", "sunny", "tidy", "velvet", "vivid", "wild", "young",
)
NOUNS = (
    "anchor", "badger", "banner", "beacon", "canyon", "castle", "cedar", "comet", "falcon", "forest", "garden",
    "harbor", "island", "jacket", "lantern", "meadow", "mirror", "needle", "orchid", "otter", "pebble", "pepper",
    "planet", "quartz", "river", "saddle", "tablet", "tiger", "tunnel", "violin", "walnut", "willow",
)


def assoc_recall_prompts(
    tokenizer: PreTrainedTokenizerBase,
    filler: Filler,
    *,
    pairs: Sequence[int],
    lengths: Sequence[int | None],
    trials: int,
    seed: int,
    value_digits: int = 4,
) -> list[ProbePrompt]:
    """``trials`` prompts per (pairs, length) cell; a length of None means the pairs alone, no filler."""
    prefix = leading_special_ids(tokenizer) + encode(tokenizer, INSTRUCTION)
    prompts = []
    for count in pairs:
        for length in lengths:
            for trial in range(trials):
                rng = prompt_rng(seed, "assoc_recall", count, length, trial)
                keys = _distinct_keys(rng, count)
                values = _distinct_values(rng, count, value_digits)
                queried = rng.randrange(count)
                template = PAIR if length is None else SPREAD_PAIR
                texts = [template.format(key=k, value=v) for k, v in zip(keys, values, strict=True)]
                lines = encode_many(tokenizer, texts)
                suffix = encode(tokenizer, QUESTION.format(key=keys[queried]))
                natural = len(prefix) + sum(len(line) for line in lines) + len(suffix)
                # spread evenly: pair i of n at depth i / (n - 1); with no filler they simply follow each other
                spread = [(i / max(count - 1, 1), line) for i, line in enumerate(lines)]
                built = assemble(
                    prefix=prefix,
                    filler=filler,
                    start_segment=rng.randrange(len(filler.segments)),
                    inserts=spread,
                    suffix=suffix,
                    length=natural if length is None else length,
                )
                prompts.append(ProbePrompt(
                    input_ids=built.input_ids,
                    answer=values[queried],
                    cell=(count, length),
                    trial=trial,
                    details={
                        "prompt_tokens": len(built.input_ids),
                        "queried_index": queried,
                        "queried_position": built.insert_positions[queried],
                    },
                ))
    return prompts


def _distinct_keys(rng: random.Random, count: int) -> list[str]:
    names = [f"{a} {n}" for a in ADJECTIVES for n in NOUNS]
    if count > len(names):
        raise ValueError(f"at most {len(names)} distinct keys are available, asked for {count} pairs")
    return rng.sample(names, count)


def _distinct_values(rng: random.Random, count: int, digits: int) -> list[str]:
    available = 9 * 10 ** (digits - 1)
    if count > available:
        raise ValueError(f"{digits}-digit values allow at most {available} distinct values, asked for {count}")
    values: list[str] = []
    seen: set[str] = set()
    while len(values) < count:
        value = random_digits(rng, digits)
        if value not in seen:
            seen.add(value)
            values.append(value)
    return values
