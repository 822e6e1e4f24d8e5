"""Two CPU processes (gloo) train one tiny model through accelerate: the paths `accelerate launch` takes.

Each process reads its own half of every step's windows; if gradients were not
synchronised the two copies would drift apart. So both must end with identical parameters,
equal (up to float rounding) to one process reading both windows as one batch of 2. This
holds for plain data parallel and for FSDP2, where the teacher is sharded across the two
processes and the trainable parameters stay replicated.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import time
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from lizard_bench.linearize.training import StageConfig
from tests.linearize.helpers import Interrupt, interrupt_at, run_pipeline, small_config, trainable_state

WORLD_SIZE = 2
DEADLINE_S = 900  # a hang guard, not a speed bound: 19 s here for data parallel, several times that for FSDP2


def recipe(batch_size: int):
    return small_config(
        stage1=StageConfig(steps=4, lr=3e-2, batch_size=batch_size),
        stage2=StageConfig(steps=4, lr=5e-3, batch_size=batch_size), checkpoint_every=2,
    )


def force_fsdp2_on_cpu(mixed_precision: str = "no") -> None:
    """Put accelerate in its FSDP2 mode on CPU processes.

    accelerate offers FSDP only on accelerators, while torch's FSDP2 (``fully_shard``) runs on
    CPU with gloo. Forcing the shared accelerate state lets ``Accelerator.prepare`` take the
    same FSDP2 code path `accelerate launch --use_fsdp --fsdp_version 2` takes on GPUs.
    """
    from accelerate import Accelerator, PartialState
    from accelerate.state import AcceleratorState
    from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

    Accelerator(cpu=True, mixed_precision=mixed_precision)
    state = AcceleratorState()
    state.fsdp_plugin = FullyShardedDataParallelPlugin(
        fsdp_version=2, auto_wrap_policy="transformer_based_wrap", transformer_cls_names_to_wrap=["LlamaDecoderLayer"],
    )
    if mixed_precision != "no":
        state.fsdp_plugin.set_mixed_precision(mixed_precision)
    PartialState().distributed_type = state.distributed_type = DistributedType.FSDP


def sharding_report(model: torch.nn.Module) -> dict[str, object]:
    """Which decoder layers FSDP2 wrapped, and whether a teacher weight is really split across processes."""
    from torch.distributed.tensor import DTensor

    weight = model.model.layers[0].mlp.up_proj.weight
    return {"layers": [type(layer).__name__ for layer in model.model.layers],
            "teacher_local_rows": weight.to_local().shape[0] if isinstance(weight, DTensor) else None,
            "teacher_rows": weight.shape[0]}


def worker(rank: int, port: int, directory: str, mode: str) -> None:
    """One process of the 2-process run (module-level so that spawned children can import it)."""
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(WORLD_SIZE), RANK=str(rank),
        LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(WORLD_SIZE), ACCELERATE_USE_CPU="true", OMP_NUM_THREADS="1",
    )
    torch.set_num_threads(1)
    from accelerate import PartialState

    precision = "bf16" if mode == "fsdp2-bf16" else "no"
    if mode.startswith("fsdp2"):
        force_fsdp2_on_cpu(precision)
    root = Path(directory)
    prepared = run_pipeline(root / "run", train=dataclasses.replace(recipe(batch_size=1), mixed_precision=precision))
    state = PartialState()
    result = {"params": trainable_state(prepared.model), "num_processes": state.num_processes,
              "stages": prepared.stages, "sharded": prepared.sharded}
    if mode == "fsdp2":
        result["sharding"] = sharding_report(prepared.model)
        with pytest.raises(Interrupt):  # a second run, stopped in stage 2 and resumed: same result
            run_pipeline(root / "resumed", train=recipe(batch_size=1), on_step=interrupt_at("stage2", 3))
        result["resumed"] = trainable_state(run_pipeline(root / "resumed", train=recipe(batch_size=1)).model)
    torch.save(result, root / f"rank{rank}.pt")
    state.wait_for_everyone()
    torch.distributed.destroy_process_group()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_two_processes(directory: Path, mode: str) -> list[dict]:
    context = mp.start_processes(worker, args=(free_port(), str(directory), mode), nprocs=WORLD_SIZE, join=False,
                                 start_method="spawn")
    deadline = time.monotonic() + DEADLINE_S
    while not context.join(timeout=1):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            raise AssertionError(f"the 2-process {mode} run did not finish within {DEADLINE_S} s")
    return [torch.load(directory / f"rank{r}.pt", weights_only=True) for r in range(WORLD_SIZE)]


def assert_matches_one_process(ranks: list[dict], directory: Path) -> None:
    """Both processes hold the same parameters, and those of one process training on both halves."""
    assert [r["num_processes"] for r in ranks] == [2, 2]
    assert ranks[0]["stages"]["stage2"]["tokens"] == 4 * 2 * small_config().seq_len  # both processes' windows
    for name, value in ranks[0]["params"].items():
        assert torch.equal(value, ranks[1]["params"][name]), f"{name} differs between processes"
    single = trainable_state(run_pipeline(directory / "single", train=recipe(batch_size=2)).model)
    assert single.keys() == ranks[0]["params"].keys()
    for name, value in single.items():
        # float32 sums in another order (which depends on the CPU's BLAS kernels), enlarged by Adam on near-zero
        # gradients: 8.5e-7 on an AVX2 EPYC; a lost or doubled batch half moves a parameter far more
        torch.testing.assert_close(ranks[0]["params"][name], value, rtol=0, atol=1e-4, msg=name)


def test_two_process_data_parallel_run_synchronises_gradients(tmp_path):
    ranks = run_two_processes(tmp_path / "ddp", "ddp")
    assert not ranks[0]["sharded"]
    assert_matches_one_process(ranks, tmp_path)


def test_two_process_fsdp2_run_shards_the_teacher_and_trains_like_one_process(tmp_path):
    ranks = run_two_processes(tmp_path / "fsdp2", "fsdp2")
    sharding = ranks[0]["sharding"]
    assert ranks[0]["sharded"] and all(name.startswith("FSDP") for name in sharding["layers"]), sharding
    assert sharding["teacher_local_rows"] == sharding["teacher_rows"] // WORLD_SIZE, sharding
    assert_matches_one_process(ranks, tmp_path)
    for name, value in ranks[0]["params"].items():  # stopped in stage 2 and resumed: as if never stopped
        torch.testing.assert_close(ranks[0]["resumed"][name], value, rtol=0, atol=1e-6, msg=name)

    # the checkpoint the sharded run saved loads onto an unsharded teacher in one process
    from lizard_bench.linearize.checkpoint import load_linearized
    from tests.tiny_models import tiny_llama

    teacher = tiny_llama(0)
    load_linearized(teacher, tmp_path / "fsdp2" / "run" / "ckpt", merge=False)
    for name, value in trainable_state(teacher).items():
        assert torch.equal(value, ranks[0]["params"][name]), name


def test_fsdp2_trains_in_bf16(tmp_path):
    """bf16 mixed precision: FSDP2 casts the sharded teacher, autocast the replicated trainable parameters."""
    ranks = run_two_processes(tmp_path / "bf16", "fsdp2-bf16")
    stages = ranks[0]["stages"]
    assert stages["stage1"]["end"] < stages["stage1"]["start"] and stages["stage2"]["end"] < stages["stage2"]["start"]
    for name, value in ranks[0]["params"].items():
        assert value.dtype == torch.float32 and torch.equal(value, ranks[1]["params"][name]), name
