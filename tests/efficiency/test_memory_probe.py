"""The CPU memory probe: a fresh child process per point, and decode numbers free of prefill residue."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from lizard_bench.efficiency import memory, resident, workloads
from tests.efficiency.memory_models import tiny_handle
from tests.tiny_models import linearized_tiny_llama, tiny_llama

MIB = 1024 * 1024


def test_each_point_runs_in_its_own_process_and_decode_excludes_prefill_residue():
    rebuild = (tiny_handle, ("lizard",), {"residue_mib": 96})
    points = [memory.measure_in_child(rebuild, length=length, batch_size=1, decode_steps=4, seed=0, timeout_s=300,
                                      prefill_chunk=64)
              for length in (160, 320)]  # past the window (128): the cache is full
    processes = [p.prefill.process for p in points]
    assert len(set(processes)) == 2 and os.getpid() not in processes
    assert [p.decode.process for p in points] == processes, "decode is measured after the prefill, in its child"
    for point in points:
        assert point.prefill.peak_bytes > 90 * MIB, "the prefill's temporaries count in its own peak"
        assert point.decode.growth_bytes < 16 * MIB, "decoding a tiny model needs next to nothing"
        assert point.decode.peak_bytes < 16 * MIB + point.prefill.cache_bytes, "the prefill's residue is not decode's"
        assert point.prefill.cache_bytes == points[0].prefill.cache_bytes > 0, "a linearized cache is constant"
        assert point.work_s > 0
    large_blocks = getattr(resident._libc(), "mallopt", None) is not None
    assert all(("M_MMAP_THRESHOLD" in p.method) == large_blocks for p in points), "records say how memory was measured"


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


@pytest.mark.skipif(getattr(resident._libc(), "mallopt", None) is None, reason="no glibc mallopt")
def test_large_freed_blocks_leave_the_resident_set_at_once():
    assert resident_after_free_mib("fixed") < 2.0
    assert resident_after_free_mib("default") > 16.0, "glibc's adaptive threshold keeps the freed block resident"
