"""Peak memory of a prefill and of decoding after it, measured honestly per device.

CUDA: the caching allocator's statistics after a reset, in this process. They count live
tensors only, so what a prefill freed is not in the decode numbers.
CPU: PyTorch keeps no allocator statistics there, and the resident-set high-water mark of
a long-lived process remembers every earlier peak, so each point runs in a fresh child
process (spawned, not forked: forking a process with OpenMP threads can hang) that rebuilds
the model, resets the kernel's high-water mark (``/proc/self/clear_refs``) and reads it back
(``VmHWM``) after the prefill. It then frees what the prefill left in the allocator
(``malloc_trim``), resets the mark again, and only then measures decoding, so the decode
numbers hold the cache and decoding's own memory, not the prefill's freed temporaries
(which were most of a "decode peak" before). Before its base is read, the child runs a short warm-up
(a prefill of :data:`WARMUP_TOKENS` and two decode steps), so what the libraries map on first use (code
pages of the kernels a CPU dispatches to, OpenMP thread stacks: 8 MiB on one 2-core AMD EPYC, about 19 MiB
on a 2-core Xeon with AVX-512) is part of the base, not of the workload. Blocks of 4 MiB or more are
mapped on their own and unmapped when freed (:func:`resident.return_large_blocks_at_once`), so a freed
cache or activation leaves the resident set at once instead of whenever glibc's heap is next trimmed.
Reported bytes are *above the loaded model*: activations, caches and temporaries, not weights.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import torch

from lizard_bench.efficiency import measure, orphans, resident, workloads

CPU_METHOD = ("child process per point: Linux VmHWM after clear_refs, minus VmRSS after model load; "
              "decode measured after the prefill's freed memory is returned (malloc_trim)")
LARGE_BLOCKS_METHOD = "; blocks of 4 MiB or more mapped on their own and returned when freed (mallopt M_MMAP_THRESHOLD)"
WARMUP_METHOD = "; after a warm-up prefill of {tokens} tokens and 2 decode steps (first-use library memory excluded)"
WARMUP_TOKENS = 192  # past a 128-token window and several 64-token chunks: the paths a long prefill takes
LOAD_TIMEOUT_S = 600.0  # for the child to rebuild the model before its budget starts
CUDA_METHOD = "torch.cuda.max_memory_allocated after reset_peak_memory_stats, minus allocated after model load"


@dataclass
class PrefillMemory:
    peak_bytes: int  # above the loaded model, during the prefill
    cache_bytes: int  # after the context, before decoding
    process: int  # id of the process that measured it


@dataclass
class DecodeMemory:
    peak_bytes: int  # above the loaded model while decoding: the cache, decoding's memory, any residue
    growth_bytes: int  # above the level after the prefill (its temporaries freed): decoding's own memory
    residue_bytes: int  # what stayed resident after the prefill beyond its cache (fragmentation)
    process: int


@dataclass
class MemoryPoint:
    prefill: PrefillMemory
    decode: DecodeMemory
    method: str
    work_s: float  # wall time of the prefill and the decode (not the model's load)


def measure_in_process(model: torch.nn.Module, ids: torch.Tensor, decode_steps: int,
                       prefill_chunk: int | None = None) -> MemoryPoint:
    """CUDA measurement (allocator statistics are exact and resettable)."""
    device = ids.device
    start = time.perf_counter()
    torch.cuda.synchronize(device)
    base = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    cache, token = workloads.prefill(model, ids, prefill_chunk)
    prefill_peak = torch.cuda.max_memory_allocated(device) - base
    cache_size = workloads.cache_size(cache)
    settled = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    workloads.decode(model, cache, token, decode_steps)
    peak = torch.cuda.max_memory_allocated(device)
    return MemoryPoint(PrefillMemory(prefill_peak, cache_size, os.getpid()),
                       DecodeMemory(peak - base, peak - settled, settled - base - cache_size, os.getpid()),
                       CUDA_METHOD, time.perf_counter() - start)


def warm_up(model: torch.nn.Module, vocab_size: int, batch_size: int, length: int, device: torch.device,
            prefill_chunk: int | None) -> int:
    """A short prefill and two decode steps, so first-use library memory is mapped before the base is read.

    Returns the warm-up's length. Its tokens differ from the measured context's (another seed).
    """
    tokens = min(length, WARMUP_TOKENS)
    ids = workloads.context_ids(vocab_size, batch_size, tokens, seed=-1, device=device)
    cache, token = workloads.prefill(model, ids, prefill_chunk)
    workloads.decode(model, cache, token, 2)
    return tokens


def _child(rebuild: tuple, length: int, batch_size: int, decode_steps: int, seed: int,
           prefill_chunk: int | None, results: Connection, parent: int) -> None:
    try:
        orphans.die_with_parent(parent)
        large_blocks = resident.return_large_blocks_at_once()  # before anything is allocated: see its docstring
        method = CPU_METHOD + (LARGE_BLOCKS_METHOD if large_blocks else "")
        build, args, kwargs = rebuild
        handle = build(*args, **kwargs)
        model = handle.model
        ids = workloads.context_ids(model.config.vocab_size, batch_size, length, seed, handle.device)
        torch.set_grad_enabled(False)
        warmed = warm_up(model, model.config.vocab_size, batch_size, length, handle.device, prefill_chunk)
        method += WARMUP_METHOD.format(tokens=warmed)
        results.send(("loaded", None))  # the budget covers the workload, not the model's load
        resident.release_free_memory()
        base = resident.rss_bytes()
        start = time.perf_counter()
        resident.reset_peak_rss()
        cache, token = workloads.prefill(model, ids, prefill_chunk)
        cache_size = workloads.cache_size(cache)
        prefill = PrefillMemory(resident.peak_rss_bytes() - base, cache_size, os.getpid())
        resident.release_free_memory()
        settled = resident.rss_bytes()
        resident.reset_peak_rss()
        workloads.decode(model, cache, token, decode_steps)
        peak = resident.peak_rss_bytes()
        decode = DecodeMemory(peak - base, peak - settled, settled - base - cache_size, os.getpid())
        results.send(("ok", MemoryPoint(prefill, decode, method, time.perf_counter() - start)))
    except BaseException as error:  # report every failure to the parent, including MemoryError
        status = "oom" if measure.is_out_of_memory(error) else "error"
        results.send((status, f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"))


def measure_in_child(rebuild: tuple, *, length: int, batch_size: int, decode_steps: int, seed: int,
                     timeout_s: float, prefill_chunk: int | None = None) -> MemoryPoint:
    """Run one CPU point in a fresh spawned process; raises PointSkipped on OOM or timeout.

    ``rebuild`` is a handle's (function, args, kwargs): called in the child, it must return a
    ModelHandle, so the function must be importable and its arguments picklable. ``timeout_s``
    bounds the prefill and decode, counted from when the child has loaded the model and warmed up (which may take
    up to :data:`LOAD_TIMEOUT_S` more), as the in-process probes' budgets do not count loading either.
    """
    context = multiprocessing.get_context("spawn")
    # a pipe, not a Queue: a Queue's semaphores outlive the child and the interpreter warns about them at exit
    results, child_end = context.Pipe(duplex=False)
    process = context.Process(target=_child, args=(rebuild, length, batch_size, decode_steps, seed, prefill_chunk,
                                                   child_end, os.getpid()))
    process.start()
    try:
        status, payload = _wait_for_result(process, results, time.monotonic() + LOAD_TIMEOUT_S)
        if status == "loaded":
            status, payload = _wait_for_result(process, results, time.monotonic() + timeout_s)
    finally:
        if process.is_alive():
            process.kill()
        process.join()
        results.close()
        child_end.close()
    if status == "ok":
        return payload
    if status in ("oom", "timeout"):
        raise measure.PointSkipped(status, payload)
    raise RuntimeError(f"memory measurement failed in the child process: {payload}")


def _wait_for_result(process, results: Connection, deadline: float) -> tuple[str, Any]:
    """Poll so that a child killed by the kernel's OOM killer is noticed at once, not at the timeout."""
    while time.monotonic() < deadline:
        if results.poll(1.0):
            return results.recv()
        if not process.is_alive():
            if results.poll(1.0):  # it may have reported just before exiting
                return results.recv()
            killed = process.exitcode == -signal.SIGKILL
            reason = f"child process died (exit code {process.exitcode})"
            return ("oom" if killed else "error"), reason + (": killed, likely out of memory" if killed else "")
    return "timeout", "memory point did not finish within its time budget (model load excluded)"
