"""Passkey retrieval prompts (the paper's long-context probe).

A random number of 5–8 tokens is stated once inside content-free filler at a chosen depth;
the prompt ends by asking for it, phrased so that any model (base or instruct) continues
with the number. The prompt is plain text, without a chat template, so the teacher and every
linearized variant see identical token sequences and an instruct template's extra tokens
do not blur the length axis.
"""

from __future__ import annotations

from collections.abc import Sequence

from transformers import PreTrainedTokenizerBase

from lizard_bench.long_context.haystack import Filler, assemble
from lizard_bench.long_context.prompt import ProbePrompt, prompt_rng
from lizard_bench.long_context.tokens import digits_with_token_count, encode, leading_special_ids

INSTRUCTION = "A pass key is hidden in the text below. Find it and remember it.\n"
NEEDLE = " The pass key is {key}. Remember it. {key} is the pass key."
QUESTION = "\nWhat is the pass key? The pass key is"


def passkey_prompts(
    tokenizer: PreTrainedTokenizerBase,
    filler: Filler,
    *,
    lengths: Sequence[int],
    depths: Sequence[float],
    trials: int,
    seed: int,
    key_tokens: tuple[int, int] = (5, 8),
) -> list[ProbePrompt]:
    """``trials`` prompts per (length, depth) cell, each with its own passkey of ``key_tokens`` tokens (inclusive)."""
    prefix = leading_special_ids(tokenizer) + encode(tokenizer, INSTRUCTION)
    suffix = encode(tokenizer, QUESTION)
    prompts = []
    for length in lengths:
        for depth in depths:
            for trial in range(trials):
                rng = prompt_rng(seed, "passkey", length, depth, trial)
                key_length = rng.randint(*key_tokens)
                key = digits_with_token_count(rng, tokenizer, key_length)
                built = assemble(
                    prefix=prefix,
                    filler=filler,
                    start_segment=rng.randrange(len(filler.segments)),
                    inserts=[(depth, encode(tokenizer, NEEDLE.format(key=key)))],
                    suffix=suffix,
                    length=length,
                )
                prompts.append(ProbePrompt(
                    input_ids=built.input_ids,
                    answer=key,
                    cell=(length, depth),
                    trial=trial,
                    details={
                        "prompt_tokens": len(built.input_ids),
                        "needle_position": built.insert_positions[0],
                        "placed_depth": built.depths[0],
                        "filler_tokens": built.filler_tokens,
                        "key_tokens": key_length,
                    },
                ))
    return prompts
