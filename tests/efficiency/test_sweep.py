"""The sweep's budget (predicted timeouts, fewer repeats on long calls) and the machine-load reading per point."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import torch

from lizard_bench.efficiency import measure
from lizard_bench.efficiency.load import NOISY_CORES, LoadMeter
from lizard_bench.efficiency.sweep import Measured, predicted_call_s, sweep


def test_a_point_predicted_over_the_budget_is_a_timeout_without_running():
    calls: list[int] = []

    def quadratic(length: int) -> Measured:
        calls.append(length)
        return Measured({"latency_s": (length**2 / 1e6, {})}, call_s=length**2 / 1e6)

    values = sweep([1000, 2000, 4000, 8000, 16000], ["latency_s"], quadratic, {"device": "cpu"}, budget_s=20.0)
    assert calls == [1000, 2000, 4000], "4000 is predicted at 16 s (fits); 8000 at 64 s (does not)"
    by_length = {value.details["context_length"]: value for value in values}
    assert [by_length[length].status for length in (1000, 2000, 4000)] == ["ok"] * 3
    assert by_length[8000].status == by_length[16000].status == "timeout"
    assert "predicted to take 64 s" in by_length[8000].reason and by_length[8000].value is None
    assert all("noisy" in by_length[length].details for length in (1000, 2000, 4000))


def test_prediction_follows_the_measured_exponent_between_one_and_two():
    assert predicted_call_s([(1000, 1.0)], 2000) is None
    assert predicted_call_s([(1000, 1.0), (2000, 4.0)], 4000) == pytest.approx(16.0)  # quadratic
    assert predicted_call_s([(1000, 1.0), (2000, 1.0)], 4000) == pytest.approx(2.0)  # flat: held at linear
    assert predicted_call_s([(1000, 1.0), (2000, 16.0)], 4000) == pytest.approx(64.0)  # held at quadratic


def test_long_calls_get_fewer_repeats_within_the_budget(monkeypatch):
    clock = {"now": 0.0}

    def call() -> None:
        clock["now"] += 4.0

    monkeypatch.setattr(measure.time, "perf_counter", lambda: clock["now"])
    timing = measure.timed(call, warmup=1, repeats=5, budget_s=10.0, device=torch.device("cpu"))
    assert timing.repeats == 1, "warm-up 4 s + one call 4 s; a second would pass 10 s"
    timing = measure.timed(call, warmup=0, repeats=5, budget_s=100.0, device=torch.device("cpu"))
    assert timing.repeats == 5 and timing.median_s == 4.0


def test_one_call_over_the_budget_is_a_timeout(monkeypatch):
    clock = {"now": 0.0}
    monkeypatch.setattr(measure.time, "perf_counter", lambda: clock["now"])
    with pytest.raises(measure.PointSkipped, match="over the 10 s budget") as skipped:
        measure.timed(lambda: clock.update(now=clock["now"] + 11.0), warmup=0, repeats=2, budget_s=10.0,
                      device=torch.device("cpu"))
    assert skipped.value.status == "timeout"


def test_another_busy_process_marks_the_point_noisy():
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)  # let it start spinning
        with LoadMeter() as meter:
            time.sleep(1.5)  # this process sleeps: any busy CPU is someone else's
    finally:
        busy.kill()
        busy.wait()
    reading = meter.reading
    assert reading.other_cores is not None and reading.other_cores > NOISY_CORES and reading.noisy
    assert reading.details()["noisy"] is True and reading.details()["load_average_1m"] >= 0


def test_setup_runs_before_each_call_outside_the_timer(monkeypatch):
    clock = {"now": 0.0}
    monkeypatch.setattr(measure.time, "perf_counter", lambda: clock["now"])
    made: list[int] = []

    def setup() -> int:  # a fresh copy per call: 5 s of copying that is not the call's own time
        clock["now"] += 5.0
        made.append(len(made))
        return made[-1]

    received: list[int] = []

    def call(copy: int) -> None:
        received.append(copy)
        clock["now"] += 1.0

    timing = measure.timed(call, setup=setup, warmup=1, repeats=3, budget_s=100.0, device=torch.device("cpu"))
    assert timing.median_s == timing.max_s == 1.0 and timing.repeats == 3
    assert received == [0, 1, 2, 3], "each call gets the copy made just before it"
