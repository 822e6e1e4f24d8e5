"""Efficiency probes on a tiny model: well-formed records, OOM and timeout points recorded, sweep finishes."""

import pytest

from lizard_bench.config import load_config
from lizard_bench.efficiency import measure, workloads
from lizard_bench.runner import run_suite
from lizard_bench.tasks import TaskContext
from tests.tiny_models import save_tiny_llama


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


def efficiency_suite(tmp_path, model_dir, tasks, **options):
    settings = {"lengths": [16, 32, 64], "repeats": 2, "decode_tokens": 4, **options}
    return load_config(None, {
        "models": [str(model_dir)], "tasks": tasks, "results_dir": str(tmp_path), "run_id": "eff",
        "device": "cpu", "task_options": {task: settings for task in tasks},
    })


def keyed(records):
    return {(r.task, r.metric): r for r in records}


def test_prefill_and_decode_records_are_well_formed(tmp_path, model_dir):
    records = keyed(run_suite(efficiency_suite(tmp_path, model_dir, ["prefill", "decode"])).records)
    assert len(records) == 12
    for length in (16, 32, 64):
        for task, metric in (("prefill", "tokens_per_s"), ("prefill", "latency_s"), ("decode", "tokens_per_s"),
                             ("decode", "cache_bytes")):
            record = records[(task, f"{metric}@{length}")]
            assert record.status == "ok" and record.value > 0
            assert record.details["context_length"] == length
            assert record.details["kernel_backend"] == "torch"
            assert record.details["prefill_chunk"] is None, "a softmax model prefills in one shot"
    rate = records[("prefill", "tokens_per_s@32")]
    assert rate.details["min"] <= rate.value <= rate.details["max"]
    assert records[("decode", "cache_bytes@64")].value == 4 * records[("decode", "cache_bytes@16")].value, (
        "a softmax cache grows linearly with the context"
    )


def test_injected_out_of_memory_is_recorded_and_the_sweep_finishes(tmp_path, model_dir, monkeypatch):
    real_prefill = workloads.prefill

    def prefill_that_fails_at_32(model, ids, chunk_size=None):
        if ids.shape[1] == 32:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB (injected)")
        return real_prefill(model, ids, chunk_size)

    monkeypatch.setattr(workloads, "prefill", prefill_that_fails_at_32)
    records = run_suite(efficiency_suite(tmp_path, model_dir, ["prefill"])).records
    status = {r.metric: r.status for r in records}
    assert status == {"tokens_per_s@16": "ok", "latency_s@16": "ok", "tokens_per_s@32": "oom", "latency_s@32": "oom",
                      "tokens_per_s@64": "ok", "latency_s@64": "ok"}
    oom = next(r for r in records if r.metric == "tokens_per_s@32")
    assert oom.value is None and "out of memory" in oom.reason


def test_timeout_marks_the_point_and_longer_ones(tmp_path, model_dir, monkeypatch):
    real_prefill = workloads.prefill
    clock = {"now": 0.0}

    def slow_at_32(model, ids, chunk_size=None):
        clock["now"] += 1000.0 if ids.shape[1] >= 32 else 0.001
        return real_prefill(model, ids, chunk_size)

    monkeypatch.setattr(workloads, "prefill", slow_at_32)
    monkeypatch.setattr(measure.time, "perf_counter", lambda: clock["now"])
    records = run_suite(efficiency_suite(tmp_path, model_dir, ["prefill"], budget_s=10.0)).records
    status = {r.metric: r.status for r in records if r.metric.startswith("tokens_per_s")}
    assert status == {"tokens_per_s@16": "ok", "tokens_per_s@32": "timeout", "tokens_per_s@64": "timeout"}


def test_cpu_memory_probe_runs_in_a_child_process(tmp_path, model_dir):
    records = run_suite(efficiency_suite(tmp_path, model_dir, ["memory"], lengths=[16, 256])).records
    values = {r.metric: r for r in records}
    for length in (16, 256):
        peak = values[f"peak_memory_bytes@{length}"]
        assert peak.status == "ok", peak.reason
        assert peak.value >= 0 and "VmHWM" in peak.details["method"]
        assert values[f"cache_bytes@{length}"].value > 0
        decode = values[f"decode_peak_memory_bytes@{length}"]
        growth = values[f"decode_growth_bytes@{length}"]
        assert decode.status == growth.status == "ok" and 0 <= growth.value
        assert "prefill_residue_bytes" in decode.details and decode.details["decode_tokens"] == 4
    assert values["cache_bytes@256"].value == 16 * values["cache_bytes@16"].value


def test_the_probes_default_chunk_is_the_linearized_models_own():
    from lizard_bench_tasks.efficiency import PREFILL_CHUNK

    from lizard_bench.linearize.prefill import DEFAULT_PREFILL_CHUNK

    assert PREFILL_CHUNK == DEFAULT_PREFILL_CHUNK


@pytest.mark.parametrize(("method", "cap", "reused"), [("lizard", 0, True), (None, None, True), (None, 0, False)])
def test_the_decode_probe_decodes_from_the_prefill_probes_state_when_it_stays_small(method, cap, reused, monkeypatch):
    """The prefill probe hands its post-prefill states to the decode probe (no second prefill of the same ids):
    a linearized model's constant-size state always, a softmax model's growing cache only while all kept
    caches fit under the cap (here the default, which holds a tiny model's, or none at all)."""
    from lizard_bench_tasks import efficiency

    from lizard_bench.config import SuiteConfig
    from lizard_bench.tasks import get_task
    from tests.long_context.helpers import make_handle
    from tests.tiny_models import linearized_tiny_llama, tiny_llama

    if cap is not None:
        monkeypatch.setattr(efficiency, "KEPT_GROWING_CACHE_BYTES", cap)
    model = linearized_tiny_llama(method, window=4) if method else tiny_llama().eval()
    handle = make_handle(model)
    options = {"lengths": [16, 40], "repeats": 2, "decode_tokens": 3}
    config = SuiteConfig(tasks=["prefill", "decode"], task_options={"prefill": options, "decode": options})
    context = TaskContext(config=config, corpus=lambda: pytest.fail("no corpus"))
    prefills = []
    real_prefill = workloads.prefill
    monkeypatch.setattr(workloads, "prefill", lambda *a, **k: prefills.append(a[1].shape[1]) or real_prefill(*a, **k))
    get_task("prefill").run(handle, context)
    assert len(handle.prefilled) == (2 if reused else 0)
    after_prefill_probe = len(prefills)
    decoded = {v.metric: v for v in get_task("decode").run(handle, context)}
    assert prefills[after_prefill_probe:] == ([] if reused else [16, 40])
    assert handle.prefilled == {}
    for length in (16, 40):
        record = decoded[f"tokens_per_s@{length}"]
        assert record.value > 0 and record.details["prefill_from_prefill_probe"] is reused
