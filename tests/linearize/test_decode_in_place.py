"""Decode steps update the state in place (GLA state, window ring) and still equal the full forward.

The window's ring wraps around several times, then a multi-token chunk arrives (which puts the
ring back in token order) and decoding resumes: every logit must equal recomputation.
"""

from __future__ import annotations

import pytest
import torch

from lizard_bench.linearize import LizardCacheLayer
from lizard_bench.linearize.prefill import prefill_in_chunks
from tests.linearize.test_chunked_prefill import ATOL, RTOL, VARIANTS, model_for
from tests.tiny_models import linearized_tiny_llama


def lizard_layers(cache) -> list[LizardCacheLayer]:
    return [layer for layer in cache.layers if isinstance(layer, LizardCacheLayer)]


def step(model, cache, token: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=token, cache=cache, use_cache=True).logits


@pytest.mark.parametrize("name", list(VARIANTS))
def test_steps_chunk_steps_equal_the_full_forward(name):
    model = model_for(name)
    ids = torch.randint(2, 90, (2, 20 + 12 + 6 + 3), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        expected = model(input_ids=ids).logits
    cache, first = prefill_in_chunks(model, ids[:, :20], 8, logits_to_keep=0)
    pieces = [first] + [step(model, cache, ids[:, t : t + 1]) for t in range(20, 32)]  # the ring wraps twice
    with torch.no_grad():
        pieces.append(model(input_ids=ids[:, 32:38], cache=cache, use_cache=True).logits)
    pieces += [step(model, cache, ids[:, t : t + 1]) for t in range(38, 41)]
    torch.testing.assert_close(torch.cat(pieces, dim=1), expected, atol=ATOL, rtol=RTOL)


def test_decode_steps_allocate_no_new_state():
    model = model_for("lizard")
    ids = torch.randint(2, 90, (1, 30), generator=torch.Generator().manual_seed(5))
    cache, _ = prefill_in_chunks(model, ids[:, :20], None)
    step(model, cache, ids[:, 20:21])  # the first step on a full window starts its ring
    layers = lizard_layers(cache)
    held = [(layer.gla.S.data_ptr(), layer.gla.z.data_ptr(), layer.buffers["k"].data_ptr()) for layer in layers]
    for t in range(21, 30):
        step(model, cache, ids[:, t : t + 1])
    assert [(layer.gla.S.data_ptr(), layer.gla.z.data_ptr(), layer.buffers["k"].data_ptr())
            for layer in layers] == held
    assert all(layer.window_state()["k"].shape[1] == 4 for layer in layers), "window 5: the last 4 keys are held"


def test_the_sinks_normaliser_kept_for_decoding_follows_the_sink_logits():
    """Kept between calls outside autograd, it must change when the logits do (a training step, a load)."""
    module = next(m for m in linearized_tiny_llama("lizard").modules() if hasattr(m, "sink_logits"))
    with torch.no_grad():
        first = module._sinks_log_total().clone()
        module.sink_logits.add_(1.5)
        after = module._sinks_log_total()
    assert torch.allclose(after, first + 1.5)
    assert torch.equal(after, torch.logsumexp(module.sink_logits.float(), dim=-1))
