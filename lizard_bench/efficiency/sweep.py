"""Sweeps over context length: one measurement per length, failures recorded per point.

An out-of-memory error at one length is recorded as 'oom' and the sweep goes on; a point
over its time budget is recorded as 'timeout', and so is every longer point (they would
only take longer), so a sweep never hangs on a length the device cannot handle.
"""

from __future__ import annotations

from collections.abc import Callable

from tqdm.auto import tqdm

from lizard_bench.efficiency.measure import PointSkipped
from lizard_bench.tasks import MetricValue

# quantity -> unit, for every metric the probes emit; a record's metric is "<quantity>@<length>"
QUANTITIES = {
    "tokens_per_s": "tokens/s",
    "latency_s": "s",
    "peak_memory_bytes": "bytes",
    "decode_peak_memory_bytes": "bytes",
    "decode_growth_bytes": "bytes",
    "cache_bytes": "bytes",
}


def sweep(
    lengths: list[int],
    quantities: list[str],
    measure_point: Callable[[int], dict[str, tuple[float, dict]]],
    shared_details: dict,
    desc: str = "sweep",
) -> list[MetricValue]:
    """Call ``measure_point(length)`` -> {quantity: (value, details)} for each length, in increasing order.

    A progress bar (``desc``) counts the lengths: a long point at 8K can take minutes on a CPU.
    """
    values: list[MetricValue] = []
    timed_out_at: int | None = None
    for length in tqdm(sorted(lengths), desc=desc, unit="len"):
        details = {**shared_details, "context_length": length}
        if timed_out_at is not None:
            reason = f"skipped: context {timed_out_at} already exceeded the time budget"
            values += _skipped(quantities, length, "timeout", reason, details)
            continue
        try:
            measured = measure_point(length)
        except PointSkipped as skipped:
            values += _skipped(quantities, length, skipped.status, str(skipped), details)
            if skipped.status == "timeout":
                timed_out_at = length
            continue
        for quantity in quantities:
            value, extra = measured[quantity]
            values.append(MetricValue(f"{quantity}@{length}", float(value), details={**details, **extra}))
    return values


def _skipped(quantities: list[str], length: int, status: str, reason: str, details: dict) -> list[MetricValue]:
    return [MetricValue(f"{q}@{length}", None, status=status, reason=reason, details=details) for q in quantities]
