"""attention_reach: the per-key weights are each layer's real arithmetic, binned by key distance."""

import math

import pytest
import torch

from lizard_bench.linearize import linearize
from lizard_bench.long_context import reach
from lizard_bench.results import Record
from lizard_bench.tasks import get_task
from tests.long_context.helpers import make_context, make_handle
from tests.tiny_models import linearized_tiny_llama, tiny_llama

T = 48


def random_ids(seed: int, length: int = T) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(2, 100, (1, length), generator=generator)


def test_swa_puts_nothing_beyond_its_window():
    model = tiny_llama(seed=3)
    linearize(model, "swa", window=8, num_anchors=2)
    for layer in reach.window_reach(model.eval(), random_ids(0), reach.Bins(128, 4)):
        assert layer.bins == reach.Bins(8, 2) and layer.kind == "lizard:separate"
        assert layer.mass["beyond"] == 0.0
        assert layer.mass["within"] + layer.mass["anchors"] == pytest.approx(1.0, abs=1e-6)
        assert layer.mass["anchors"] > 0


def _rope64(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos[:, :, None] + rotated * sin[:, :, None]


def test_teacher_bins_match_a_float64_softmax_by_hand():
    model = tiny_llama(seed=4)
    ids = random_ids(1)
    hidden, (cos, sin) = reach.capture_inputs(model, ids)[1]
    attention = reach.attention_modules(model)[1]
    H, Hkv, D = 4, 2, 16
    q = (hidden.double() @ attention.q_proj.weight.double().T).view(1, T, H, D)
    k = (hidden.double() @ attention.k_proj.weight.double().T).view(1, T, Hkv, D)
    q, k = _rope64(q, cos.double(), sin.double()), _rope64(k, cos.double(), sin.double())
    k = k.repeat_interleave(H // Hkv, dim=2)
    bins = reach.Bins(window=8, anchors=3)
    expected = {"within": 0.0, "anchors": 0.0, "beyond": 0.0}
    queries = range(bins.first_query, T)
    for h in range(H):
        for i in queries:
            scores = torch.stack([q[0, i, h] @ k[0, j, h] / math.sqrt(D) for j in range(i + 1)])
            p = torch.softmax(scores, dim=0)
            for j in range(i + 1):
                where = "anchors" if j < bins.anchors else "within" if i - j < bins.window else "beyond"
                expected[where] += p[j].item() / (H * len(queries))
    got = reach.bin_masses(reach.teacher_weights(attention, model.config, hidden, (cos, sin)), bins)
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, abs=1e-6), name
    assert got["unassigned"] == pytest.approx(0.0, abs=1e-6)


def _mixed_outputs(model, ids) -> list[torch.Tensor]:
    """Each Lizard layer's mixed heads' output (o_proj's input) from a plain forward."""
    outputs = []
    hooks = [module.base.o_proj.register_forward_pre_hook(lambda m, args: outputs.append(args[0].detach()))
             for module in reach.attention_modules(model)]
    try:
        with torch.no_grad():
            model(input_ids=ids, use_cache=False)
    finally:
        for hook in hooks:
            hook.remove()
    return outputs


@pytest.mark.parametrize(("method", "options"), [
    ("lizard", {"window": 8}),  # convex
    ("lizard_plus", {"window": 8}),  # convex, RoPE in the window, 4 anchors
    ("lizard_separate", {"window": 8}),
    ("lolcats", {"window": 8}),  # shared normaliser
    ("no_window", {}),
])
def test_weights_reproduce_the_layers_own_output(method, options):
    model = linearized_tiny_llama(method, seed=5, **options)
    ids = random_ids(2)
    mixed = _mixed_outputs(model, ids)
    for module, (hidden, position_embeddings), target in zip(
            reach.attention_modules(model), reach.capture_inputs(model, ids), mixed, strict=True):
        with torch.no_grad():
            weights, _, _ = reach.layer_weights(module, model.config, hidden, position_embeddings)
            v = module.project(hidden)[2].float().repeat_interleave(module.groups, dim=2)
            rebuilt = torch.einsum("bhij,bjhd->bihd", weights, v)
        if module.config.combine == "separate" and module.config.window and module.config.linear_branch:
            assert (module.alpha > 0).all()  # no clamping: then ŷ = (1 + α) Σ P v exactly
            rebuilt = rebuilt * (1 + module.alpha.detach().view(1, 1, -1, 1))
        if module.config.combine in ("convex", "shared") or not module.config.window:
            # the GLA divides by (Σ + eps), as the kernels do: a row sums to 1 - O(eps / Σ), visible only in the
            # first rows, where Σ holds a few keys; the rows the bins count have keys in every bin
            sums = weights.sum(-1)
            torch.testing.assert_close(sums, torch.ones_like(sums), atol=1e-4, rtol=0)
            counted = sums[..., max(8, module.config.window + module.config.num_anchors):]
            torch.testing.assert_close(counted, torch.ones_like(counted), atol=1e-5, rtol=0)
        torch.testing.assert_close(rebuilt.reshape(target.shape), target, atol=1e-5, rtol=1e-4)
        if module.config.linear_branch:  # the linear branch does reach past the window
            assert reach.bin_masses(weights, reach.layer_bins(module, reach.Bins(8, 0)))["beyond"] > 1e-3


def test_unnormalised_layers_are_unavailable_with_a_reason():
    model = linearized_tiny_llama("lizard_unnormalised", seed=6, window=8)
    layers = reach.window_reach(model, random_ids(3), reach.Bins(8, 0))
    assert all(not layer.mass and "unnormalised" in layer.reason for layer in layers)


def test_the_task_reports_one_record_with_per_layer_bins():
    task = get_task("attention_reach")
    options = {"attention_reach": {"windows": 2, "length": 64, "window": 16, "anchors": 2}}
    teacher = task.run(make_handle(tiny_llama(seed=7)), make_context(options))
    swa = tiny_llama(seed=7)
    linearize(swa, "swa", window=16, num_anchors=2)
    windowed = task.run(make_handle(swa.eval()), make_context(options))
    for values in (teacher, windowed):
        (value,) = values
        assert value.metric == "mass_beyond_window" and value.status == "ok"
        assert value.details["windows"] == 2 and len(value.details["layers"]) == 2
        Record(model="m", variant="v", task="attention_reach", metric=value.metric, value=value.value,
               stderr=value.stderr, details=value.details).validate()
    assert 0.0 < teacher[0].value < 1.0
    assert windowed[0].value == 0.0
    assert teacher[0].details["layers"][0]["kind"] == "softmax"


def test_windows_too_short_for_the_bins_are_unavailable():
    task = get_task("attention_reach")
    values = task.run(make_handle(tiny_llama()), make_context({"attention_reach": {"length": 16, "window": 16}}))
    assert values[0].status == "unavailable" and "no query past" in values[0].reason
