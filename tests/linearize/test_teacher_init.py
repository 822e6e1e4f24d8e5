"""Meta-memory started from the teacher: sink logits that hold the teacher's distant share, sink values at v₀."""

import math

import pytest
import torch

from lizard_bench.linearize import linearize
from lizard_bench.linearize.heads import repeat_kv
from lizard_bench.linearize.teacher_init import initialise_from_teacher
from tests.linearize.test_attention_math import rope
from tests.tiny_models import tiny_llama

W, ANCHORS, T = 8, 2, 40


def layer_inputs(model, ids):
    """Each layer's attention input and RoPE, captured from a teacher forward (the model is not linearized)."""
    captured = {}

    def keep(module, args, kwargs, index):
        captured[index] = (kwargs["hidden_states"], kwargs["position_embeddings"])

    hooks = [layer.self_attn.register_forward_pre_hook(lambda m, a, kw, i=i: keep(m, a, kw, i), with_kwargs=True)
             for i, layer in enumerate(model.model.layers)]
    with torch.no_grad():
        model(input_ids=ids)
    for hook in hooks:
        hook.remove()
    return captured


@pytest.mark.parametrize("window_rope", [False, True])
def test_teacher_sink_logits_give_the_sinks_the_teachers_distant_share(window_rope):
    ids = torch.randint(2, 90, (2, T), generator=torch.Generator().manual_seed(0))
    teacher = tiny_llama(seed=5)
    captured = layer_inputs(teacher, ids)
    model = tiny_llama(seed=5)
    linearize(model, "lizard_convex", window=W, num_anchors=ANCHORS, window_rope=window_rope, sink_init="teacher")
    assert initialise_from_teacher(model, ids) == len(model.model.layers)
    for index, layer in enumerate(model.model.layers):
        attention = layer.self_attn
        hidden, (cos, sin) = captured[index]
        B, H, D = 2, attention.num_heads, attention.head_dim
        with torch.no_grad():
            q = attention.base.q_proj(hidden).view(B, T, H, D).double()
            k = repeat_kv(attention.base.k_proj(hidden).view(B, T, -1, D), attention.groups).double()
        qr, kr = rope(q, cos.double(), sin.double()), rope(k, cos.double(), sin.double())
        distant_share, sink_share = [], []
        for i in range(W + ANCHORS, T):  # queries with keys beyond the window and the anchors
            local = set(range(i - W + 1, i + 1)) | set(range(ANCHORS))
            teacher_p = torch.softmax(torch.einsum("bhd,bshd->bhs", qr[:, i], kr[:, : i + 1]) / math.sqrt(D), -1)
            distant = 1 - teacher_p[..., sorted(local)].sum(-1)
            own_q, own_k = (qr, kr) if window_rope else (q, k)
            own_scores = torch.einsum("bhd,bshd->bhs", own_q[:, i], own_k[:, sorted(local)]) / math.sqrt(D)
            own = torch.logsumexp(own_scores, -1)
            sinks = torch.logsumexp(attention.sink_logits.detach().double(), -1)
            distant_share.append(torch.logit(distant))
            sink_share.append(sinks - own)  # log-odds of the sinks against the local keys
        # per head, the mean log-odds of the sinks' share equals the teacher's mean log-odds of distant keys
        torch.testing.assert_close(torch.stack(sink_share).mean(dim=(0, 1)),
                                   torch.stack(distant_share).mean(dim=(0, 1)), atol=1e-4, rtol=1e-4)


def test_teacher_sink_values_start_at_the_teachers_first_value():
    ids = torch.randint(2, 90, (3, T), generator=torch.Generator().manual_seed(1))
    captured = layer_inputs(tiny_llama(seed=5), ids)
    model = tiny_llama(seed=5)
    linearize(model, "lizard_separate", window=W, sink_values="teacher")
    initialise_from_teacher(model, ids)
    for index, layer in enumerate(model.model.layers):
        attention = layer.self_attn
        with torch.no_grad():
            v = attention.base.v_proj(captured[index][0]).view(3, T, attention.num_kv_heads, attention.head_dim)
        expected = repeat_kv(v[:, :1], attention.groups)[:, 0].mean(dim=0)
        torch.testing.assert_close(attention.sink_values[:, 0].detach(), expected)
        assert not attention.sink_values[:, 1:].any() and not attention.sink_logits.any()  # logits keep sink_init 0


def test_models_without_teacher_init_are_left_alone():
    model = tiny_llama(seed=5)
    linearize(model, "lizard_convex", window=W, sink_init=1.5)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    assert initialise_from_teacher(model, torch.randint(2, 90, (1, T))) == 0
    assert all(torch.equal(before[name], p) for name, p in model.named_parameters())
