"""Recipe switches: the scalars' own learning rate, stage 1 before o_proj, stage 2 training the attention."""

import pytest
import torch
import torch.nn.functional as F

from lizard_bench.config import ConfigError
from lizard_bench.linearize import linearize, lizard_parameters
from lizard_bench.linearize.training import LoraSettings, TrainConfig, lora_parameters
from lizard_bench.linearize.training.optim import build_optimizer, build_scheduler, is_scalar_parameter
from lizard_bench.linearize.training.stages import Alignment, AttentionTransfer
from tests.tiny_models import tiny_llama


def linearized(method: str = "lizard_separate"):
    model = tiny_llama(seed=2)
    linearize(model, method, window=8)
    return model


def test_scalar_lr_puts_alpha_sinks_and_gate_biases_in_their_own_group():
    params = dict(sorted(lizard_parameters(linearized()).items()))
    scalars = {name for name in params if is_scalar_parameter(name)}
    assert {name.rsplit(".", 2)[-1] for name in scalars} == {"alpha", "sink_logits", "bias"}
    assert all(name.endswith("gate.proj.bias") for name in scalars if name.endswith("bias"))
    optimizer = build_optimizer(params, lr=1e-3, betas=[0.9, 0.99], weight_decay=0.0, scalar_lr=5e-2)
    scheduler = build_scheduler(optimizer, total_steps=10, warmup_fraction=0.1)
    groups = optimizer.param_groups
    assert [len(g["params"]) for g in groups] == [len(params) - len(scalars), len(scalars)]
    assert {id(p) for p in groups[1]["params"]} == {id(params[name]) for name in scalars}
    for _ in range(4):  # the schedule scales both groups alike
        optimizer.step()
        scheduler.step()
    assert groups[1]["lr"] / groups[0]["lr"] == pytest.approx(50.0)


def test_without_scalar_lr_there_is_one_group():
    params = lizard_parameters(linearized())
    assert len(build_optimizer(params, lr=1e-3, betas=[0.9, 0.99], weight_decay=0.0).param_groups) == 1


def test_stage1_before_o_proj_matches_the_heads_mixed_values():
    model = linearized("lizard")
    stage = AttentionTransfer(before_o_proj=True)
    stage.setup(model)
    ids = torch.randint(2, 90, (2, 20), generator=torch.Generator().manual_seed(0))
    captured = {}
    hooks = [layer.self_attn.base.o_proj.register_forward_pre_hook(
        lambda module, args, i=i: captured.setdefault(i, []).append(args[0].detach()))
        for i, layer in enumerate(model.model.layers)]
    loss = stage.loss(model, ids)
    for hook in hooks:
        hook.remove()
    # each o_proj runs twice per layer: the teacher's call (the target), then the linearized layer's
    expected = torch.stack([F.mse_loss(calls[1], calls[0]) for calls in captured.values()]).mean()
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert all(p.grad is not None for p in lizard_parameters(model).values() if p.requires_grad)
    stage.teardown(model)
    assert not any(layer.self_attn.distill_before_o_proj for layer in model.model.layers)


def test_stage2_can_train_the_attention_too():
    model = linearized("lizard")
    lora = LoraSettings()
    default = set(Alignment(lora, seed=0).setup(model))
    assert default == set(lora_parameters(model))
    both = set(Alignment(lora, seed=0, train_attention=True).setup(model))
    assert both == set(lora_parameters(model)) | set(lizard_parameters(model))


def test_recipe_switches_in_yaml_and_their_errors():
    config = TrainConfig.from_dict({"stage1": {"scalar_lr": "1e-2"}, "distill_target": "heads",
                                    "stage2_trains_attention": True})
    assert config.stage1.scalar_lr == 0.01 and config.stage2.scalar_lr is None
    assert config.stage_fingerprint("stage2")["stage2_trains_attention"] is True
    assert "stage2_trains_attention" not in TrainConfig().stage_fingerprint("stage2")
    with pytest.raises(ConfigError, match="distill_target"):
        TrainConfig.from_dict({"distill_target": "logits"})
    with pytest.raises(ConfigError, match="stage1.scalar_lr. must be > 0"):
        TrainConfig.from_dict({"stage1": {"scalar_lr": 0}})
