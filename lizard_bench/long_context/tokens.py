"""Tokenizer helpers: prompts are assembled as token ids, so their length is exact.

Each piece of a prompt (instructions, filler sentences, the needle, the question) is
tokenized on its own and the ids are concatenated. The joins then may differ from what
tokenizing the whole text at once would give, but only at piece boundaries, which are
placed at whitespace; in exchange the prompt length is exactly the target, for every
tokenizer, with no trimming loop.
"""

from __future__ import annotations

import random

from transformers import PreTrainedTokenizerBase


def encode(tokenizer: PreTrainedTokenizerBase, text: str) -> list[int]:
    """Token ids of ``text`` without special tokens."""
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def encode_many(tokenizer: PreTrainedTokenizerBase, texts: list[str]) -> list[list[int]]:
    """Token ids of each text (one batched call: fast tokenizers parallelize it)."""
    if not texts:
        return []
    return [list(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]


def leading_special_ids(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """The ids the tokenizer puts before every text by default (a BOS token for Llama-style models).

    A prompt should start the way the model saw documents start in training; tokenizers that
    add nothing (GPT-2 style, SmolLM2) give an empty list.
    """
    with_special = list(tokenizer("a", add_special_tokens=True)["input_ids"])
    plain = encode(tokenizer, "a")
    if with_special[len(with_special) - len(plain) :] == plain:
        return with_special[: len(with_special) - len(plain)]
    return []


def random_digits(rng: random.Random, count: int) -> str:
    """``count`` random decimal digits, the first non-zero (so the number has exactly ``count`` digits)."""
    if count < 1:
        raise ValueError(f"a number needs at least one digit, got {count}")
    return str(rng.randint(1, 9)) + "".join(str(rng.randint(0, 9)) for _ in range(count - 1))


def digits_with_token_count(
    rng: random.Random, tokenizer: PreTrainedTokenizerBase, tokens: int, max_attempts: int = 200
) -> str:
    """A random number that is exactly ``tokens`` tokens long under ``tokenizer``.

    The paper's passkeys are 5–8 *tokens*; tokenizers differ (SmolLM2 and Llama 2 split
    every digit, Llama 3 groups up to three), so the digit count is searched for: start at
    one digit per token and grow or shrink until a fresh random number has the wanted
    token count. The token count is that of the number on its own, which equals its count
    inside the prompt for tokenizers that split digits from surrounding text.
    """
    digits = tokens
    for _ in range(max_attempts):
        candidate = random_digits(rng, digits)
        measured = len(encode(tokenizer, candidate))
        if measured == tokens:
            return candidate
        digits = max(1, digits + (1 if measured < tokens else -1))
    raise ValueError(f"found no number of exactly {tokens} tokens for this tokenizer in {max_attempts} attempts")
