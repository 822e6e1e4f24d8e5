"""Peak memory of a prefill and of decoding after it, measured honestly per device.

CUDA: the caching allocator's peak statistics after a reset, in this process.
CPU: PyTorch keeps no allocator statistics there, and the resident-set high-water mark of
a long-lived process remembers every earlier peak, so each point runs in a fresh child
process (spawned, not forked: forking a process with OpenMP threads can hang) that
rebuilds the model, resets the kernel's high-water mark (``/proc/self/clear_refs``) and
reads it back (``VmHWM``) after the workload. Reported bytes are *above the loaded model*:
activations, caches and temporaries, not weights.
"""

from __future__ import annotations

import multiprocessing
import queue
import signal
import time
from dataclasses import dataclass
from typing import Any

import torch

from lizard_bench.bench import measure, workloads

CPU_METHOD = "child process per point: Linux VmHWM after clear_refs, minus VmRSS after model load"
CUDA_METHOD = "torch.cuda.max_memory_allocated after reset_peak_memory_stats, minus allocated after model load"


@dataclass
class MemoryPoint:
    prefill_peak_bytes: int
    decode_peak_bytes: int
    cache_bytes: int  # after the context, before decoding
    method: str


def measure_in_process(model: torch.nn.Module, ids: torch.Tensor, decode_steps: int) -> MemoryPoint:
    """CUDA measurement (allocator statistics are exact and resettable)."""
    device = ids.device
    torch.cuda.synchronize(device)
    base = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    cache, token = workloads.prefill(model, ids)
    prefill_peak = torch.cuda.max_memory_allocated(device) - base
    context_cache_bytes = workloads.cache_size(cache)
    torch.cuda.reset_peak_memory_stats(device)
    workloads.decode(model, cache, token, decode_steps)
    decode_peak = torch.cuda.max_memory_allocated(device) - base
    return MemoryPoint(prefill_peak, decode_peak, context_cache_bytes, CUDA_METHOD)


def _child(rebuild: tuple, length: int, batch_size: int, decode_steps: int, seed: int,
           results: multiprocessing.Queue) -> None:
    try:
        build, args, kwargs = rebuild
        handle = build(*args, **kwargs)
        model = handle.model
        ids = workloads.context_ids(model.config.vocab_size, batch_size, length, seed, handle.device)
        torch.set_grad_enabled(False)
        base = measure.rss_bytes()
        measure.reset_peak_rss()
        cache, token = workloads.prefill(model, ids)
        prefill_peak = measure.peak_rss_bytes() - base
        context_cache_bytes = workloads.cache_size(cache)
        measure.reset_peak_rss()
        workloads.decode(model, cache, token, decode_steps)
        decode_peak = measure.peak_rss_bytes() - base
        results.put(("ok", MemoryPoint(prefill_peak, decode_peak, context_cache_bytes, CPU_METHOD)))
    except BaseException as error:  # report every failure to the parent, including MemoryError
        status = "oom" if measure.is_out_of_memory(error) else "error"
        results.put((status, f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"))


def measure_in_child(rebuild: tuple, *, length: int, batch_size: int, decode_steps: int, seed: int,
                     timeout_s: float) -> MemoryPoint:
    """Run one CPU point in a fresh spawned process; raises PointSkipped on OOM or timeout.

    ``rebuild`` is a handle's (function, args, kwargs): called in the child, it must return a
    ModelHandle, so the function must be importable and its arguments picklable.
    """
    context = multiprocessing.get_context("spawn")
    results: multiprocessing.Queue = context.Queue()
    process = context.Process(target=_child, args=(rebuild, length, batch_size, decode_steps, seed, results))
    process.start()
    deadline = time.monotonic() + timeout_s
    try:
        status, payload = _wait_for_result(process, results, deadline)
    finally:
        if process.is_alive():
            process.kill()
        process.join()
    if status == "ok":
        return payload
    if status in ("oom", "timeout"):
        raise measure.PointSkipped(status, str(payload))
    raise RuntimeError(f"memory measurement failed in the child process: {payload}")


def _wait_for_result(process, results: multiprocessing.Queue, deadline: float) -> tuple[str, Any]:
    """Poll so that a child killed by the kernel's OOM killer is noticed at once, not at the timeout."""
    while time.monotonic() < deadline:
        try:
            return results.get(timeout=1.0)
        except queue.Empty:
            if not process.is_alive():
                try:
                    return results.get(timeout=1.0)  # it may have reported just before exiting
                except queue.Empty:
                    killed = process.exitcode == -signal.SIGKILL
                    reason = f"child process died (exit code {process.exitcode})"
                    return ("oom" if killed else "error"), reason + (": killed, likely out of memory" if killed else "")
    return "timeout", "memory point did not finish within its time budget"
