"""Prefill in chunks equals prefill in one shot: logits, decode state and the decode step after it.

Every variant with a linear branch, on tiny random models whose added parameters are perturbed
(so gates, sinks, α, anchors and feature maps all matter), with a window of 5 so chunks of 7
and 13 tokens cross it, and a prompt length (40) that neither chunk size divides: with 13 the
last chunk is a single token, which is also how a decode step arrives.
"""

from __future__ import annotations

import pytest
import torch
from transformers import DynamicCache

from lizard_bench.linearize import LizardCacheLayer
from lizard_bench.linearize.prefill import DEFAULT_PREFILL_CHUNK, prefill_in_chunks
from tests.tiny_models import linearized_tiny_llama

WINDOW = 5
VARIANTS = {
    "lizard": ("lizard", {}),
    "separate": ("lizard_separate", {}),
    "unnormalised": ("lizard_unnormalised", {}),
    "lolcats": ("lolcats", {}),
    "lizard_plus-anchors": ("lizard_plus", {"num_anchors": 3}),
    "window_rope": ("window_rope", {}),
    "no_window": ("no_window", {}),
    "hybrid": ("lizard", {"softmax_layers": [0]}),
}
LENGTH = 40
ATOL, RTOL = 1e-5, 1e-4


def model_for(name: str) -> torch.nn.Module:
    method, options = VARIANTS[name]
    window = {} if method == "no_window" else {"window": WINDOW}
    return linearized_tiny_llama(method, seed=5, **window, **options)


def prompt(batch: int = 2, length: int = LENGTH) -> torch.Tensor:
    return torch.randint(2, 90, (batch, length), generator=torch.Generator().manual_seed(7))


def assert_same_state(chunked, one_shot, length: int = LENGTH) -> None:
    for index, (a, b) in enumerate(zip(chunked.layers, one_shot.layers, strict=True)):
        assert type(a) is type(b), f"layer {index}"
        if not isinstance(a, LizardCacheLayer):  # a hybrid's softmax layer: its growing key/value cache
            torch.testing.assert_close(a.keys, b.keys, atol=ATOL, rtol=RTOL)
            torch.testing.assert_close(a.values, b.values, atol=ATOL, rtol=RTOL)
            continue
        assert a.seen == b.seen == length
        if b.gla is not None:
            torch.testing.assert_close(a.gla.S, b.gla.S, atol=ATOL, rtol=RTOL)
            torch.testing.assert_close(a.gla.z, b.gla.z, atol=ATOL, rtol=RTOL)
        assert a.window_state().keys() == b.window_state().keys()
        for name, tensor in b.window_state().items():
            torch.testing.assert_close(a.window_state()[name], tensor, atol=ATOL, rtol=RTOL, msg=name)


@pytest.mark.parametrize("chunk", [7, 13])
@pytest.mark.parametrize("name", list(VARIANTS))
def test_chunked_prefill_equals_one_shot(name, chunk):
    model = model_for(name)
    ids = prompt()
    with torch.no_grad():
        expected = model(input_ids=ids).logits  # no cache at all: the training-time forward
    one_shot_cache, one_shot_last = prefill_in_chunks(model, ids, None)
    cache, logits = prefill_in_chunks(model, ids, chunk, logits_to_keep=0)
    torch.testing.assert_close(logits, expected, atol=ATOL, rtol=RTOL)
    _, last = prefill_in_chunks(model, ids, chunk)
    torch.testing.assert_close(last, expected[:, -1:], atol=ATOL, rtol=RTOL)
    torch.testing.assert_close(one_shot_last, expected[:, -1:], atol=ATOL, rtol=RTOL)
    assert_same_state(cache, one_shot_cache)

    following = torch.randint(2, 90, (ids.shape[0], 3), generator=torch.Generator().manual_seed(8))
    with torch.no_grad():
        full = model(input_ids=torch.cat([ids, following], dim=1)).logits[:, LENGTH:]
        steps = [model(input_ids=following[:, i : i + 1], cache=cache, use_cache=True).logits for i in range(3)]
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=ATOL, rtol=RTOL)


def test_logits_to_keep_spanning_chunks():
    model = model_for("lizard")
    ids = prompt()
    with torch.no_grad():
        expected = model(input_ids=ids).logits
    _, logits = prefill_in_chunks(model, ids, 7, logits_to_keep=9)  # the last 9 positions lie in two chunks
    torch.testing.assert_close(logits, expected[:, -9:], atol=ATOL, rtol=RTOL)


def test_bad_chunk_size_is_refused():
    with pytest.raises(ValueError, match="chunk_size"):
        prefill_in_chunks(model_for("lizard"), prompt(), 0)


@pytest.mark.parametrize("name", ["lizard", "lizard_plus-anchors"])
def test_generate_prefills_in_chunks_and_generates_the_same_tokens(name):
    model = model_for(name)
    assert model.generation_config.prefill_chunk_size == DEFAULT_PREFILL_CHUNK
    ids = prompt(batch=1)
    with torch.no_grad():
        chunked = model.generate(ids, max_new_tokens=8, do_sample=False, pad_token_id=1, prefill_chunk_size=7)
        model.generation_config.prefill_chunk_size = None
        one_shot = model.generate(ids, max_new_tokens=8, do_sample=False, pad_token_id=1)
    assert torch.equal(chunked, one_shot)


@pytest.mark.parametrize("name", ["lizard_plus-anchors", "lizard", "hybrid"])
def test_the_state_left_behind_holds_no_chunk_it_was_cut_from(name):
    """A buffer kept as a slice of a chunk would keep the whole chunk's storage alive (memory that grows with C).

    Buffers may share one storage (a decode step joins the anchors and the window ring), so what is checked is
    that the storages behind a layer's buffers hold exactly the buffers' bytes. 40 tokens in chunks of 13 end
    with a one-token chunk, a decode step."""
    model = model_for(name)
    cache, _ = prefill_in_chunks(model, prompt(length=LENGTH), 13)
    layers = [layer for layer in cache.layers if isinstance(layer, LizardCacheLayer)]
    assert layers
    for layer in layers:
        storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in layer.buffers.values()}
        held = sum(t.numel() * t.element_size() for t in layer.buffers.values())
        assert sum(storages.values()) == held, sorted(layer.buffers)


@pytest.mark.parametrize(("name", "covers_every_key"), [("lizard", False), ("hybrid", True)])
def test_the_mask_covers_only_new_keys_unless_a_softmax_layer_needs_them(name, covers_every_key):
    """A fully linear model's chunk mask covers the chunk's keys only; a hybrid's softmax layers need every key's."""
    model = model_for(name)
    shapes: list[tuple[int, ...] | None] = []
    attention = next(m for m in model.modules() if hasattr(m, "attend"))
    attention.register_forward_pre_hook(
        lambda _module, _args, kwargs: shapes.append(None if kwargs.get("attention_mask") is None
                                                     else tuple(kwargs["attention_mask"].shape)),
        with_kwargs=True)
    ids = prompt(batch=2, length=32)
    mask = torch.ones_like(ids)
    mask[0, :3] = 0  # a left-padded row, so transformers builds a 4-D mask
    cache = DynamicCache()
    model(input_ids=ids[:, :16], attention_mask=mask[:, :16], cache=cache, use_cache=True)
    model(input_ids=ids[:, 16:], attention_mask=mask, cache=cache, use_cache=True)
    if covers_every_key:
        assert shapes[-1] is not None and shapes[-1][-2:] == (16, 32)
    else:  # the new keys are all real: transformers then passes no mask at all
        assert shapes[-1] is None or shapes[-1][-2:] == (16, 16)
