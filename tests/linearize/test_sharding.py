"""The pieces FSDP2 training relies on, checked in one process (the 2-process run is in test_distributed)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from accelerate.utils import DistributedType

from lizard_bench.linearize import linearize, lizard_parameters
from lizard_bench.linearize.training.sharding import check_supported, replicate_trainable
from lizard_bench.linearize.training.stages import AttentionTransfer
from tests.tiny_models import tiny_llama


def stage1_gradients(layerwise_scale: float | None) -> tuple[float, dict[str, torch.Tensor]]:
    model = tiny_llama(0, num_hidden_layers=3)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        linearize(model, "lizard")
    stage = AttentionTransfer(layerwise_scale=layerwise_scale)
    params = stage.setup(model)
    input_ids = torch.randint(2, 90, (2, 40), generator=torch.Generator().manual_seed(2))
    loss = stage.loss(model, input_ids)
    if not stage.backward_in_forward:
        (loss / 2).backward()  # as the loop does with grad_accum = 2
    stage.teardown(model)
    return loss.item(), {name: p.grad.clone() for name, p in params.items()}


def test_layerwise_stage1_backward_equals_backward_of_the_mean():
    """Each layer back-propagating its own MSE inside the forward gives the gradients of one backward of the mean."""
    loss, reference = stage1_gradients(None)
    layerwise_loss, layerwise = stage1_gradients(0.5)
    assert layerwise_loss == pytest.approx(loss, rel=1e-6)
    assert reference.keys() == layerwise.keys()
    for name, grad in reference.items():
        assert grad.abs().sum() > 0, name
        torch.testing.assert_close(layerwise[name], grad, rtol=1e-5, atol=1e-8, msg=name)


@pytest.mark.parametrize(("mode", "fsdp2", "precision", "accepted"), [
    (DistributedType.NO, False, "no", True), (DistributedType.MULTI_GPU, False, "fp16", True),
    (DistributedType.FSDP, True, "bf16", True), (DistributedType.FSDP, True, "fp16", False),
    (DistributedType.FSDP, False, "no", False), (DistributedType.DEEPSPEED, False, "no", False),
])
def test_only_modes_with_readable_checkpoints_are_accepted(mode, fsdp2, precision, accepted):
    accelerator = SimpleNamespace(distributed_type=mode, is_fsdp2=fsdp2, mixed_precision=precision)
    if accepted:
        check_supported(accelerator)
    else:
        with pytest.raises(ValueError, match="FSDP2"):
            check_supported(accelerator)


def test_replication_refuses_a_users_own_ignored_modules_and_replaces_its_own():
    model = tiny_llama(0)
    linearize(model, "lizard")
    plugin = SimpleNamespace(ignored_modules="model\\.layers\\.0\\..*")
    accelerator = SimpleNamespace(state=SimpleNamespace(fsdp_plugin=plugin), device=torch.device("cpu"))
    with pytest.raises(ValueError, match="ignored_modules"):
        replicate_trainable(accelerator, model)
    plugin.ignored_modules = None
    for _ in range(2):  # a second stage (or variant) replaces the holder instead of refusing it
        replicate_trainable(accelerator, model)
    held = {id(p) for p in plugin.ignored_modules[0].parameters()}
    assert held == {id(p) for p in lizard_parameters(model).values()}
