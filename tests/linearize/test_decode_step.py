"""The written-out decode step (``linearize/decode_step.py``) is taken where it applies and equals the general path.

Whole-sequence equality (decode equals the full forward) is tested for every variant in
``test_decode_in_place.py``; this file checks that those steps really went through the
written-out path, that it leaves the same state as the general one, and that the cases it
does not cover (padding, valued sinks, the shared normaliser, autograd) are left to the
general path.
"""

from __future__ import annotations

import copy

import pytest
import torch

import lizard_bench.linearize.attention as attention_module
from lizard_bench.linearize import lizard_modules
from lizard_bench.linearize.decode_step import takes_fast_step
from lizard_bench.linearize.prefill import prefill_in_chunks
from tests.linearize.test_chunked_prefill import ATOL, RTOL, assert_same_state, model_for
from tests.tiny_models import linearized_tiny_llama

FAST = ["lizard", "separate", "unnormalised", "lizard_plus-anchors", "window_rope", "no_window", "hybrid"]


def prefilled(model, length: int = 20):
    ids = torch.randint(2, 90, (2, length + 4), generator=torch.Generator().manual_seed(11))
    cache, _ = prefill_in_chunks(model, ids[:, :length], 8)
    return ids, cache


def layer_states(model, cache) -> list[tuple]:
    return [(module, cache.layers[module.layer_idx]) for module in lizard_modules(model)]


@pytest.mark.parametrize("name", FAST)
def test_the_written_out_step_is_taken_and_leaves_what_the_general_path_leaves(name, monkeypatch):
    model = model_for(name)
    ids, cache = prefilled(model)
    general = copy.deepcopy(cache)
    with torch.no_grad():
        assert all(takes_fast_step(module, 1, state, None) for module, state in layer_states(model, cache))
        taken = []
        real_step = attention_module.decode_step
        monkeypatch.setattr(attention_module, "decode_step", lambda *a: taken.append(1) or real_step(*a))
        fast = [model(input_ids=ids[:, t : t + 1], cache=cache, use_cache=True).logits for t in range(20, 24)]
        assert len(taken) == 4 * len(lizard_modules(model))
        monkeypatch.setattr(attention_module, "takes_fast_step", lambda *a: False)
        slow = [model(input_ids=ids[:, t : t + 1], cache=general, use_cache=True).logits for t in range(20, 24)]
    torch.testing.assert_close(torch.cat(fast, dim=1), torch.cat(slow, dim=1), atol=ATOL, rtol=RTOL)
    assert_same_state(cache, general, length=24)  # window buffers compared in token order (rings unrolled)


def test_padding_valued_sinks_the_shared_normaliser_and_autograd_take_the_general_path():
    model = model_for("lizard")
    _, cache = prefilled(model)
    module, state = layer_states(model, cache)[0]
    with torch.no_grad():
        assert takes_fast_step(module, 1, state, None)
        assert not takes_fast_step(module, 2, state, None)  # a chunk, not a step
        assert not takes_fast_step(module, 1, state, torch.ones(2, 1, dtype=torch.bool))
        assert not takes_fast_step(module, 1, None, None)
        state.buffers["real_seen"] = torch.tensor([20, 18])  # padding met before
        assert not takes_fast_step(module, 1, state, None)
    with torch.enable_grad():
        fresh_module, fresh_state = layer_states(model, prefilled(model)[1])[0]
        assert not takes_fast_step(fresh_module, 1, fresh_state, None)
    for method, options in (("lolcats", {}), ("lizard_separate", {"sink_values": "zeros"})):
        other = linearized_tiny_llama(method, seed=5, window=5, **options)
        with torch.no_grad():
            other_module, other_state = layer_states(other, prefilled(other)[1])[0]
            assert not takes_fast_step(other_module, 1, other_state, None), method


def test_anchors_wait_until_every_one_has_left_the_window():
    model = model_for("lizard_plus-anchors")  # window 5, 3 anchors: the step applies from position 7 on
    module = lizard_modules(model)[0]
    with torch.no_grad():
        for length, applies in ((6, False), (7, True)):
            _, cache = prefilled(model, length)
            assert takes_fast_step(module, 1, cache.layers[module.layer_idx], None) == applies, length
