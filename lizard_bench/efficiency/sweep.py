"""Sweeps over context length: one measurement per length, failures recorded per point.

An out-of-memory error at one length is recorded as 'oom' and the sweep goes on. A point
over its time budget is recorded as 'timeout', and so is every longer point (they would
only take longer), so a sweep never hangs on a length the device cannot handle. Once two
points are measured, the next one's cost is predicted from them (a power law in the length,
exponent between 1 and 2); a point predicted to take longer than the budget is recorded as
'timeout' without spending the budget first, and its reason gives the prediction.

Every point also records how busy the machine was while it ran (``efficiency/load.py``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from tqdm.auto import tqdm

from lizard_bench.efficiency.load import LoadMeter
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


@dataclass
class Measured:
    """One point's values ({quantity: (value, details)}) and the time one call of its workload took."""

    values: dict[str, tuple[float, dict]]
    call_s: float


def predicted_call_s(history: list[tuple[int, float]], length: int) -> float | None:
    """One call's time at ``length`` from the last two measured (length, seconds), or None before two exist.

    The exponent is the one the two points show, held between 1 (no workload grows slower
    than its length) and 2 (none here grows faster than attention's square).
    """
    if len(history) < 2:
        return None
    (short, short_s), (long, long_s) = history[-2:]
    exponent = math.log(max(long_s, 1e-9) / max(short_s, 1e-9)) / math.log(long / short)
    return long_s * (length / long) ** min(2.0, max(1.0, exponent))


def sweep(
    lengths: list[int],
    quantities: list[str],
    measure_point: Callable[[int], Measured],
    shared_details: dict,
    budget_s: float,
    desc: str = "sweep",
) -> list[MetricValue]:
    """Call ``measure_point(length)`` for each length, in increasing order.

    A progress bar (``desc``) counts the lengths: a long point at 32K can take minutes on a CPU.
    """
    values: list[MetricValue] = []
    timed_out_at: int | None = None
    history: list[tuple[int, float]] = []
    for length in tqdm(sorted(lengths), desc=desc, unit="len"):
        details = {**shared_details, "context_length": length}
        if timed_out_at is not None:
            reason = f"skipped: context {timed_out_at} already exceeded the time budget"
            values += _skipped(quantities, length, "timeout", reason, details)
            continue
        predicted = predicted_call_s(history, length)
        if predicted is not None and predicted > budget_s:
            (short, _), (long, _) = history[-2:]
            reason = (f"skipped: one call predicted to take {predicted:.0f} s from the {short} and {long} points, "
                      f"over the {budget_s:.0f} s budget")
            values += _skipped(quantities, length, "timeout", reason, details)
            timed_out_at = length
            continue
        try:
            with LoadMeter() as meter:
                measured = measure_point(length)
        except PointSkipped as skipped:
            values += _skipped(quantities, length, skipped.status, str(skipped), details)
            if skipped.status == "timeout":
                timed_out_at = length
            continue
        history.append((length, measured.call_s))
        load = meter.reading.details()
        for quantity in quantities:
            value, extra = measured.values[quantity]
            # n: the repeats a speed is the median of (its spread is in the details), 1 for a single reading
            values.append(MetricValue(f"{quantity}@{length}", float(value), details={**details, **load, **extra},
                                      n=int(extra.get("repeats", 1))))
    return values


def _skipped(quantities: list[str], length: int, status: str, reason: str, details: dict) -> list[MetricValue]:
    return [MetricValue(f"{q}@{length}", None, status=status, reason=reason, details=details) for q in quantities]
