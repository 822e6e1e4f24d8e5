"""The CPU memory probe: a fresh child process per point, and decode numbers free of prefill residue."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from lizard_bench.efficiency import memory, resident, workloads
from tests.efficiency.memory_models import tiny_handle
from tests.tiny_models import linearized_tiny_llama, tiny_llama

MIB = 1024 * 1024


def measure_points(residue_mib: int) -> list[memory.MemoryPoint]:
    rebuild = (tiny_handle, ("lizard",), {"residue_mib": residue_mib})
    return [memory.measure_in_child(rebuild, length=length, batch_size=1, decode_steps=4, seed=0, timeout_s=300,
                                    prefill_chunk=64)
            for length in (160, 320)]  # past the window (128): the cache is full


def test_each_point_runs_in_its_own_process_and_decode_excludes_prefill_residue():
    # Each prefill of the residue run leaves 96 MiB of freed small blocks in the heap; the control run leaves
    # none. What the machine's libraries add (thread stacks, code pages, BLAS buffers) is in both, so the
    # differences below hold on any machine: without the probe's trim the decode peaks would differ by 96 MiB.
    residue, control = measure_points(residue_mib=96), measure_points(residue_mib=0)
    processes = [p.prefill.process for p in residue + control]
    assert len(set(processes)) == 4 and os.getpid() not in processes
    assert [p.decode.process for p in residue + control] == processes, "decode is measured after its prefill, there"
    for point, plain in zip(residue, control, strict=True):
        assert point.prefill.peak_bytes - plain.prefill.peak_bytes > 90 * MIB, "a prefill's temporaries are in its peak"
        assert point.decode.peak_bytes - plain.decode.peak_bytes < 8 * MIB, "the prefill's residue is not decode's"
        assert point.decode.residue_bytes - plain.decode.residue_bytes < 8 * MIB
        assert point.decode.growth_bytes < 16 * MIB, "decoding a tiny model needs next to nothing"
        assert point.prefill.cache_bytes == plain.prefill.cache_bytes == residue[0].prefill.cache_bytes > 0, \
            "a linearized cache is constant"
        assert point.work_s > 0
    large_blocks = getattr(resident._libc(), "mallopt", None) is not None
    assert all(("M_MMAP_THRESHOLD" in p.method) == large_blocks for p in residue), "records say how memory was measured"
    assert "warm-up prefill of 160 tokens" in residue[0].method, "records say how memory was measured"


def test_a_measuring_child_dies_with_its_parent(tmp_path):
    """``kill -9`` of a run must not leave its memory-probe child running (with its model) for minutes."""
    pid_file = tmp_path / "child.pid"
    parent = subprocess.Popen([sys.executable, "-c", ORPHAN_PARENT, str(pid_file)])
    try:
        deadline = time.monotonic() + 120
        while not pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        child = int(pid_file.read_text())
        assert process_alive(child), "the child sleeps for 600 s: it must be running now"
        parent.kill()
        parent.wait(timeout=30)
        deadline = time.monotonic() + 10  # the kernel signals the child at once; without it, it lives for 600 s
        while process_alive(child) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not process_alive(child), "the child outlived its killed parent"
    finally:
        parent.kill()


ORPHAN_PARENT = """
import sys
from lizard_bench.efficiency import memory
from tests.efficiency.memory_models import sleeping_handle
memory.measure_in_child((sleeping_handle, (sys.argv[1],), {}), length=8, batch_size=1, decode_steps=1, seed=0,
                        timeout_s=600)
"""


def process_alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, dead but not yet reaped by its new parent, does not)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    state = next(line for line in status.splitlines() if line.startswith("State:"))
    return "zombie" not in state and "dead" not in state


def test_prefill_chunk_applies_to_linearized_models_only():
    assert workloads.prefill_chunk_for(linearized_tiny_llama("lizard"), 16) == 16
    assert workloads.prefill_chunk_for(tiny_llama(), 16) is None


def test_chunked_prefill_workload_continues_like_one_shot():
    model = linearized_tiny_llama("lizard", window=5)
    ids = workloads.context_ids(model.config.vocab_size, 2, 37, 0, torch.device("cpu"))
    one_shot_cache, one_shot = workloads.prefill(model, ids)
    cache, token = workloads.prefill(model, ids, 8)
    assert torch.equal(token, one_shot)
    assert workloads.cache_size(cache) == workloads.cache_size(one_shot_cache)
    assert torch.equal(workloads.decode(model, cache, token, 3), workloads.decode(model, one_shot_cache, one_shot, 3))



# In a fresh interpreter (the setting is process-wide): a 24 MiB block is freed first (glibc then serves blocks
# up to 24 MiB from its heap by default), a 20 MiB block is allocated with a small block pinned after it (the
# heap's top cannot be trimmed) and freed. With large blocks returned at once it leaves the resident set.
FREED_BLOCK = """
import sys, torch
from lizard_bench.efficiency import resident
if sys.argv[1] == "fixed":
    assert resident.return_large_blocks_at_once()
first = torch.ones(6 * 1024 * 1024); del first
resident.release_free_memory()
before = resident.rss_bytes()
block = torch.ones(5 * 1024 * 1024)
pin = torch.ones(1024)
del block
print((resident.rss_bytes() - before) / (1024 * 1024))
"""


def resident_after_free_mib(mode: str) -> float:
    done = subprocess.run([sys.executable, "-c", FREED_BLOCK, mode], capture_output=True, text=True, check=True,
                          timeout=120)
    return float(done.stdout.strip().splitlines()[-1])


# an allocator other than glibc's own, or its thresholds set from outside, is not what this test describes
ALLOCATOR_VARIABLES = ("LD_PRELOAD", "GLIBC_TUNABLES", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")
ALLOCATOR_SETTINGS = [name for name in ALLOCATOR_VARIABLES if os.environ.get(name)]


@pytest.mark.skipif(getattr(resident._libc(), "mallopt", None) is None, reason="no glibc mallopt")
@pytest.mark.skipif(bool(ALLOCATOR_SETTINGS), reason=f"allocator set from the environment: {ALLOCATOR_SETTINGS}")
def test_large_freed_blocks_leave_the_resident_set_at_once():
    # relative to the 20 MiB block: a huge page the kernel gives the small pinned block must not decide it
    assert resident_after_free_mib("fixed") < 0.25 * 20
    assert resident_after_free_mib("default") > 0.75 * 20, "glibc's adaptive threshold keeps the freed block resident"
