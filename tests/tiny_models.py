"""Fixtures: tiny randomly initialised Llama models and a character tokenizer, built offline.

Nothing here is a real model; numbers measured on these are never reported as results.
"""

from __future__ import annotations

import string
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

CHARACTERS = string.printable


def tiny_llama_config(**changes) -> LlamaConfig:
    """2 layers, 4 query heads over 2 KV heads (grouped-query attention), like SmolLM2 in miniature."""
    settings = dict(
        vocab_size=len(CHARACTERS) + 2, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512, rope_theta=10000.0,
        tie_word_embeddings=True, bos_token_id=0, eos_token_id=1, pad_token_id=1,
    )
    settings.update(changes)
    return LlamaConfig(**settings)


def tiny_llama(seed: int = 0, **changes) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    return LlamaForCausalLM(tiny_llama_config(**changes)).eval()


def perturb(parameters: dict[str, torch.nn.Parameter], seed: int) -> None:
    """Move parameters well away from their initial values (in place), so a loader that re-initialised them shows."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in parameters.values():
            noise = torch.randn(parameter.shape, generator=generator)
            parameter.add_(0.3 * noise.to(parameter.dtype) * (parameter.detach().abs().mean() + 0.1))


def linearized_tiny_llama(method: str = "lizard", seed: int = 0, **options) -> LlamaForCausalLM:
    """``tiny_llama(seed)`` linearized with ``method`` and its added parameters perturbed (untrained, in eval mode)."""
    from lizard_bench.linearize import linearize, lizard_parameters

    model = tiny_llama(seed)
    linearize(model, method, **options)
    perturb(lizard_parameters(model), seed + 1)
    return model.eval()


def character_tokenizer() -> PreTrainedTokenizerFast:
    vocab = {"<s>": 0, "</s>": 1, **{c: i + 2 for i, c in enumerate(CHARACTERS)}}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="</s>"))
    backend.pre_tokenizer = pre_tokenizers.Split(pattern="", behavior="isolated")
    backend.decoder = decoders.Fuse()  # decode "abc" back to "abc", not "a b c"
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>", pad_token="</s>")


def save_tiny_llama(directory: Path, seed: int = 0) -> Path:
    """A saved model directory, as a user's local checkpoint would be."""
    tiny_llama(seed).save_pretrained(directory)
    character_tokenizer().save_pretrained(directory)
    return directory
