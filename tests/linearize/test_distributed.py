"""Two CPU processes (gloo) train one tiny model through accelerate: the path `accelerate launch` takes.

Each process reads its own half of every step's windows; if gradients were not
synchronised the two copies would drift apart. So both must end with identical parameters,
equal (up to float rounding) to one process reading both windows as one batch of 2.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import torch
import torch.multiprocessing as mp

from lizard_bench.linearize.training import StageConfig
from tests.linearize.helpers import run_pipeline, small_config, trainable_state

WORLD_SIZE = 2
DEADLINE_S = 120


def recipe(batch_size: int):
    return small_config(
        stage1=StageConfig(steps=4, lr=3e-2, batch_size=batch_size),
        stage2=StageConfig(steps=4, lr=5e-3, batch_size=batch_size), checkpoint_every=2,
    )


def worker(rank: int, port: int, directory: str) -> None:
    """One process of the 2-process run (module-level so that spawned children can import it)."""
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(WORLD_SIZE), RANK=str(rank),
        LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(WORLD_SIZE), ACCELERATE_USE_CPU="true", OMP_NUM_THREADS="1",
    )
    torch.set_num_threads(1)
    from accelerate import PartialState

    prepared = run_pipeline(Path(directory), train=recipe(batch_size=1))
    state = PartialState()
    torch.save({"params": trainable_state(prepared.model), "num_processes": state.num_processes,
                "stages": prepared.stages}, Path(directory) / f"rank{rank}.pt")
    state.wait_for_everyone()
    torch.distributed.destroy_process_group()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_two_process_run_synchronises_gradients(tmp_path):
    context = mp.start_processes(worker, args=(free_port(), str(tmp_path / "ddp")), nprocs=WORLD_SIZE, join=False,
                                 start_method="spawn")
    deadline = time.monotonic() + DEADLINE_S
    while not context.join(timeout=1):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            raise AssertionError(f"the 2-process run did not finish within {DEADLINE_S} s")
    ranks = [torch.load(tmp_path / "ddp" / f"rank{r}.pt", weights_only=True) for r in range(WORLD_SIZE)]
    assert [r["num_processes"] for r in ranks] == [2, 2]
    assert ranks[0]["stages"]["stage2"]["tokens"] == 4 * 2 * small_config().seq_len  # both processes' windows
    for name, value in ranks[0]["params"].items():
        assert torch.equal(value, ranks[1]["params"][name]), f"{name} differs between processes"

    single = trainable_state(run_pipeline(tmp_path / "single", train=recipe(batch_size=2)).model)
    assert single.keys() == ranks[0]["params"].keys()
    for name, value in single.items():
        torch.testing.assert_close(ranks[0]["params"][name], value, rtol=0, atol=1e-5, msg=name)
