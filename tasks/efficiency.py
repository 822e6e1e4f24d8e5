"""Efficiency probes registered as tasks: prefill, decode and memory against context length.

They sit in a suite beside accuracy tasks and write records to the same store; the
reports plot them against context length. Lengths default to 512–32K on CPU and 1K–32K on
GPU; ``--limit N`` keeps the first N lengths. Warm-up calls run at the first length only (longer ones
reuse warm code paths), and each point stays within ``budget_s``: fewer repeats where calls are long, and
'timeout' where one call is predicted or found to take longer. Linearized models prefill ``prefill_chunk`` tokens at a
time through their constant-size state (null: one shot); softmax models prefill in one shot. The chunk
size used is in every record's details. When the prefill probe runs before the decode probe, it keeps each length's
post-prefill state and the decode probe decodes from it instead of prefilling the same ids again
(``prefill_from_prefill_probe`` in the decode records): always when the model's whole cache is
constant-size (a linearized model without softmax layers; at 32K on a 2-core CPU that prefill alone is
about 90 s), and growing caches while all kept ones stay within ``KEPT_GROWING_CACHE_BYTES``.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from lizard_bench.tasks import MetricValue, ModelHandle, Task, TaskContext, TaskUnavailable, register_task
from lizard_bench.typed_config import at_least, distinct, rule

if TYPE_CHECKING:  # the machinery loads when a probe runs, so listing tasks does not wait for torch
    import torch

    from lizard_bench.efficiency.measure import Timing
    from lizard_bench.efficiency.sweep import Measured

CPU_LENGTHS = [512, 2048, 8192, 32768]
PREFILL_CHUNK = 512  # linearize.prefill.PREFILL_CHUNK (tests/efficiency checks they agree)
GPU_LENGTHS = [1024, 2048, 4096, 8192, 16384, 32768]
# Growing (softmax) caches the prefill probe may hold for the decode probe, all lengths together: the
# teacher's 512-8K caches of SmolLM2 (472 MiB), saving its 8K prefill (~36 s on a 2-core CPU) a second time.
KEPT_GROWING_CACHE_BYTES = 512 * 2**20


@dataclass(frozen=True)
class EfficiencyOptions:
    """``task_options.prefill`` (``decode``, ``memory``)."""

    lengths: list[int] | None = field(default=None, metadata=distinct(1))  # None: CPU_LENGTHS, or GPU_LENGTHS on CUDA
    batch_size: int = field(default=1, metadata=at_least(1))
    decode_tokens: int = field(default=32, metadata=at_least(1))
    warmup: int = field(default=1, metadata=at_least(0))
    repeats: int = field(default=3, metadata=at_least(1))  # at most: fewer when the point would pass budget_s
    # per point; a point predicted or found to take longer is recorded as 'timeout'
    budget_s: float = field(default=300.0, metadata=rule(lambda s: s > 0, "must be > 0"))
    # tokens per prefill chunk of a linearized model; None: one shot
    prefill_chunk: int | None = field(default=PREFILL_CHUNK, metadata=at_least(1))


class EfficiencyTask(Task):
    suite = "efficiency"
    data_source = "synthetic token ids (deterministic by seed); no data needed"
    Options = EfficiencyOptions

    def settings(self, handle: ModelHandle, context: TaskContext) -> EfficiencyOptions:
        from lizard_bench.efficiency import workloads

        options = context.options(self)
        lengths = options.lengths or (GPU_LENGTHS if handle.device.type == "cuda" else CPU_LENGTHS)
        if context.limit is not None:
            lengths = sorted(lengths)[: context.limit]
        return replace(options, lengths=lengths, prefill_chunk=workloads.prefill_chunk_for(handle.model,
                                                                                           options.prefill_chunk))

    def shared_details(self, handle: ModelHandle, settings: EfficiencyOptions) -> dict[str, Any]:
        import torch

        return {
            "batch_size": settings.batch_size,
            "dtype": str(next(handle.model.parameters()).dtype).removeprefix("torch."),
            "device": str(handle.device),
            "kernel_backend": handle.kernel_backend,
            "threads": torch.get_num_threads(),
            "prefill_chunk": settings.prefill_chunk,
        }

    def ids(self, handle: ModelHandle, settings: EfficiencyOptions, length: int, seed: int) -> torch.Tensor:
        from lizard_bench.efficiency import workloads

        return workloads.context_ids(handle.model.config.vocab_size, settings.batch_size, length, seed,
                                     handle.device)

    def warmup(self, settings: EfficiencyOptions, length: int) -> int:
        return settings.warmup if length == min(settings.lengths) else 0

    def run_sweep(self, handle: ModelHandle, settings: EfficiencyOptions, point) -> list[MetricValue]:
        from lizard_bench.efficiency.sweep import sweep

        return sweep(settings.lengths, list(self.metrics), point, self.shared_details(handle, settings),
                     settings.budget_s, desc=f"{self.name} {handle.model_name}/{handle.variant}")


def _timing_details(timing: Timing, scale: float = 1.0) -> dict[str, float]:
    """min/max of a rate are the inverse of max/min of the time."""
    return {"min": scale / timing.max_s, "max": scale / timing.min_s, "repeats": timing.repeats}


def _state_key(settings: EfficiencyOptions, length: int, seed: int) -> tuple:
    """What makes two probes' prefills the same work (the ids follow from length, batch size and seed)."""
    return (length, settings.batch_size, seed, settings.prefill_chunk)


def _timed_prefill(handle: ModelHandle, ids: torch.Tensor, settings: EfficiencyOptions):
    """One prefill and its wall time; a prefill over the point's budget makes the point a 'timeout'."""
    from lizard_bench.efficiency import workloads
    from lizard_bench.efficiency.measure import PointSkipped

    start = time.perf_counter()
    cache, token = workloads.prefill(handle.model, ids, settings.prefill_chunk)
    elapsed = time.perf_counter() - start
    if elapsed > settings.budget_s:
        raise PointSkipped("timeout", f"the prefill took {elapsed:.1f} s, over the {settings.budget_s:.0f} s budget")
    return cache, token, elapsed


@register_task
class Prefill(EfficiencyTask):
    name = "prefill"
    label = "Prefill"
    metrics = {"tokens_per_s": "higher", "latency_s": "lower"}
    description = "Prefill latency and tokens/s for a batch of contexts of length L"

    def run(self, handle: ModelHandle, context: TaskContext) -> list[MetricValue]:
        from lizard_bench.efficiency import workloads
        from lizard_bench.efficiency.measure import timed
        from lizard_bench.efficiency.sweep import Measured
        from lizard_bench.linearize.cache import cache_bytes, constant_size

        settings = self.settings(handle, context)
        keep = context.config.runs("decode", handle.variant) and "decode" in context.config.tasks
        kept_growing = 0  # bytes of the growing caches kept so far

        def point(length: int) -> Measured:
            nonlocal kept_growing
            ids = self.ids(handle, settings, length, context.seed)
            last: list = []

            def call(_cleared: None) -> None:
                last[:] = [workloads.prefill(handle.model, ids, settings.prefill_chunk)]

            # the previous call's state is freed before the next prefill, outside the timer
            timing = timed(call, setup=last.clear, warmup=self.warmup(settings, length), repeats=settings.repeats,
                           budget_s=settings.budget_s, device=handle.device)
            cache, token = last[0]
            growing = 0 if constant_size(cache) else cache_bytes(cache)
            if keep and kept_growing + growing <= KEPT_GROWING_CACHE_BYTES:
                kept_growing += growing
                handle.prefilled[_state_key(settings, length, context.seed)] = (cache, token, timing.median_s)
            tokens = ids.numel()
            return Measured({
                "tokens_per_s": (tokens / timing.median_s, _timing_details(timing, tokens)),
                "latency_s": (timing.median_s, {"min": timing.min_s, "max": timing.max_s, "repeats": timing.repeats}),
            }, timing.median_s)

        return self.run_sweep(handle, settings, point)


@register_task
class Decode(EfficiencyTask):
    name = "decode"
    label = "Decode"
    metrics = {"tokens_per_s": "higher", "cache_bytes": "lower"}
    description = "Decode tokens/s generating N tokens after a context of length L, and the cache size then"

    def run(self, handle: ModelHandle, context: TaskContext) -> list[MetricValue]:
        from lizard_bench.efficiency import workloads
        from lizard_bench.efficiency.measure import timed
        from lizard_bench.efficiency.sweep import Measured

        settings = self.settings(handle, context)
        steps = settings.decode_tokens

        def point(length: int) -> Measured:
            ids = self.ids(handle, settings, length, context.seed)
            kept = handle.prefilled.pop(_state_key(settings, length, context.seed), None)
            cache, token, prefill_s = kept or _timed_prefill(handle, ids, settings)
            size = workloads.cache_size(cache)
            # every repeat decodes from a copy of the same post-prefill state, so the context stays L;
            # the copy is made before the timer starts (its cost grows with the teacher's cache alone)
            timing = timed(lambda fresh: workloads.decode(handle.model, fresh, token, steps),
                           setup=lambda: copy.deepcopy(cache), warmup=self.warmup(settings, length),
                           repeats=settings.repeats, budget_s=settings.budget_s - prefill_s, device=handle.device)
            tokens = steps * settings.batch_size
            details = {**_timing_details(timing, tokens), "new_tokens": steps, "prefill_from_prefill_probe": bool(kept)}
            return Measured({
                "tokens_per_s": (tokens / timing.median_s, details),
                "cache_bytes": (size, {}),
            }, prefill_s + timing.median_s)

        try:
            return self.run_sweep(handle, settings, point)
        finally:
            handle.prefilled.clear()


@register_task
class Memory(EfficiencyTask):
    name = "memory"
    label = "Memory"
    metrics = {"peak_memory_bytes": "lower", "decode_peak_memory_bytes": "lower", "decode_growth_bytes": "lower",
               "cache_bytes": "lower"}
    description = ("Peak memory above the loaded model during prefill and during decode (after the prefill's "
                   "temporaries are freed), decode's growth above the post-prefill level, and cache bytes")

    def data_status(self, config) -> str | None:
        from lizard_bench.efficiency.resident import cpu_peak_memory_supported

        if not cpu_peak_memory_supported() and not _cuda_available():
            return "CPU peak memory needs Linux /proc/self/clear_refs, which this system does not provide"
        return None

    def run(self, handle: ModelHandle, context: TaskContext) -> list[MetricValue]:
        from lizard_bench.efficiency import memory
        from lizard_bench.efficiency.sweep import Measured

        settings = self.settings(handle, context)
        steps = settings.decode_tokens
        handle.prefilled.clear()  # states a prefill probe left (a decode probe that did not run) are not counted
        if handle.device.type != "cuda" and handle.rebuild is None:
            raise TaskUnavailable("CPU memory probes rebuild the model in a child process; this handle cannot")

        def point(length: int) -> Measured:
            if handle.device.type == "cuda":
                result = memory.measure_in_process(handle.model, self.ids(handle, settings, length, context.seed),
                                                   steps, settings.prefill_chunk)
            else:
                result = memory.measure_in_child(handle.rebuild, length=length, batch_size=settings.batch_size,
                                                 decode_steps=steps, seed=context.seed, timeout_s=settings.budget_s,
                                                 prefill_chunk=settings.prefill_chunk)
            method = {"method": result.method}
            decode = {**method, "decode_tokens": steps, "prefill_residue_bytes": result.decode.residue_bytes}
            return Measured({
                "peak_memory_bytes": (result.prefill.peak_bytes, method),
                "decode_peak_memory_bytes": (result.decode.peak_bytes, decode),
                "decode_growth_bytes": (result.decode.growth_bytes, decode),
                "cache_bytes": (result.prefill.cache_bytes, {}),
            }, result.work_s)

        return self.run_sweep(handle, settings, point)


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()
