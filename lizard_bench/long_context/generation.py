"""Greedy answers to probe prompts, one prompt at a time.

Batch size 1 on purpose: batching prompts of different lengths needs padding, which the
shared kernels refuse and a recurrent state would silently absorb (left padding would be
folded into the linear-attention state before the prompt begins). Decoding is greedy and
short, and only the new tokens are decoded and scored.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from lizard_bench.long_context.prompt import ProbePrompt
from lizard_bench.long_context.scoring import exact_match
from lizard_bench.tasks.api import ModelHandle


@dataclass(frozen=True)
class Outcome:
    prompt: ProbePrompt
    generated: str
    correct: bool


@torch.no_grad()
def greedy_continuation(handle: ModelHandle, input_ids: Sequence[int], max_new_tokens: int) -> str:
    """The decoded text of up to ``max_new_tokens`` greedily generated tokens after ``input_ids``."""
    tokenizer = handle.tokenizer
    ids = torch.tensor([list(input_ids)], device=handle.device)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    output = handle.model.generate(
        ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=pad_id
    )
    return tokenizer.decode(output[0, ids.shape[1] :].tolist(), skip_special_tokens=True)


def answer_prompts(
    handle: ModelHandle,
    prompts: Sequence[ProbePrompt],
    *,
    max_new_tokens: int,
    desc: str,
    generate: Callable[[ModelHandle, Sequence[int], int], str] = greedy_continuation,
) -> list[Outcome]:
    """Generate and score every prompt, with a progress bar showing the running accuracy."""
    outcomes: list[Outcome] = []
    progress = tqdm(prompts, desc=f"{desc} {handle.model_name}/{handle.variant}", unit="prompt")
    for prompt in progress:
        generated = generate(handle, prompt.input_ids, max_new_tokens)
        outcomes.append(Outcome(prompt, generated, exact_match(generated, prompt.answer)))
        progress.set_postfix(acc=f"{sum(o.correct for o in outcomes) / len(outcomes):.2f}")
    progress.close()
    return outcomes
