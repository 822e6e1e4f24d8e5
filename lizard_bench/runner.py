"""The run loop: expand a suite into (model × variant × task) units and record each as it ends.

Each unit's records are written atomically the moment it finishes, so an interrupted run
started again with the same run id skips finished units and redoes only the rest. A task
whose data is missing yields an 'unavailable' record; a task that fails yields an 'error'
record with the message, and the suite goes on; so does a variant that cannot be built
(its training fails, say): each of its tasks gets an 'error' record naming the cause, and a
resumed run tries to build it again. Errors in the user's input (an unknown model, a bad
config, a missing corpus) are found before the run directory exists (:mod:`lizard_bench.preflight`),
and one that only shows once a model loads (a corrupt tensor) stops the run with one line.
"""

from __future__ import annotations

import datetime as dt
import functools
import random
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lizard_bench.config import ConfigError, SuiteConfig
from lizard_bench.data.corpus import load_corpus
from lizard_bench.errors import InputError
from lizard_bench.models.loading import load_model
from lizard_bench.preflight import preflight, print_warnings
from lizard_bench.provenance import run_provenance
from lizard_bench.results import Record, RunStore
from lizard_bench.results.intervals import Z95
from lizard_bench.tasks import MetricValue, ModelHandle, Task, TaskContext, TaskUnavailable
from lizard_bench.variants import prepare_variant, resolve_variant


@dataclass
class RunSummary:
    run_dir: Path
    records: list[Record]
    skipped_units: int
    ran_units: int


def new_run_id(config: SuiteConfig) -> str:
    return f"{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}-{config.name}"


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def run_suite(config: SuiteConfig, *, retrain: bool = False) -> RunSummary:
    """Run every unfinished unit of ``config`` and return all records of the run directory.

    Everything checkable is checked first (:func:`~lizard_bench.preflight.preflight`); the run
    directory is created only after that. ``retrain`` trains the linearized variants again even
    where a matching checkpoint exists (replacing it, which is otherwise never done).
    """
    plan = preflight(config, retrain=retrain)
    run_id = config.run_id or new_run_id(config)
    store = RunStore(Path(config.results_dir) / run_id)
    store.remove_partial_files()
    base_provenance = run_provenance(
        device=plan.device, kernel_backend=plan.backend, seed=config.seed, config_hash=config.config_hash()
    )
    _check_or_write_manifest(store, config, run_id, base_provenance)
    print_warnings(plan.warnings)  # once every check passed: a refused run prints its one error line only
    corpus = plan.corpus
    context = TaskContext(config=config, corpus=(lambda: corpus) if corpus is not None
                          else functools.cache(lambda: load_corpus(config.corpus)), run_dir=store.run_dir)

    skipped = ran = 0
    total = sum(config.runs(t.name, v) for t in plan.tasks for v in config.variants) * len(config.models)
    for model_name in config.models:
        for variant_name in config.variants:
            planned = [t for t in plan.tasks if config.runs(t.name, variant_name)]
            pending = [t for t in planned if not store.unit_done(model_name, variant_name, t.name)]
            skipped += len(planned) - len(pending)
            if not pending:
                continue
            try:
                handle = build_handle(config, model_name, variant_name, plan.backend, run_dir=store.run_dir,
                                      retrain=retrain)
            except InputError:
                raise
            except Exception as exc:
                traceback.print_exc()
                reason = f"building variant {variant_name!r} failed: {type(exc).__name__}: {exc}"
                for task in pending:
                    store.write_unit(model_name, variant_name, task.name,
                                     _error_records(model_name, variant_name, task, reason, base_provenance))
                ran += len(pending)
                continue
            for task in pending:
                print(f"[unit {skipped + ran + 1}/{total}] {model_name} / {variant_name} / {task.name}",
                      file=sys.stderr, flush=True)
                records = _run_unit(handle, task, context, base_provenance)
                store.write_unit(model_name, variant_name, task.name, records)
                ran += 1
            del handle
    return RunSummary(run_dir=store.run_dir, records=store.read_records(), skipped_units=skipped, ran_units=ran)


def _check_or_write_manifest(store: RunStore, config: SuiteConfig, run_id: str, provenance: dict) -> None:
    """A new run writes its manifest; a resumed one must have the same config.

    A run directory without records (a start that failed while loading, say) holds nothing to
    lose, so it is started afresh under the new settings instead of being refused.
    """
    existing = store.read_manifest()
    if existing is not None and store.has_records():
        if existing.get("config_hash") != config.config_hash():
            raise ConfigError(
                f"run {run_id!r} in {store.run_dir} was started with a different config; "
                "resume it with the same settings or pass a new --run-id"
            )
        return
    store.write_manifest({
        "run_id": run_id,
        "config": config.to_dict(),
        "config_hash": config.config_hash(),
        "started": _now(),
        "provenance": provenance,
    })


def build_handle(config: SuiteConfig, model_name: str, variant_name: str, backend: str, *, run_dir: Path,
                 retrain: bool = False) -> ModelHandle:
    """Load ``model_name`` and turn it into ``variant_name``: deterministic, so a child process can rebuild it.

    Linearized variants are trained on first use (or when ``retrain``) and loaded from their checkpoint after that.
    """
    seed_everything(config.seed)
    loaded = load_model(model_name, device=config.device, dtype=config.dtype)
    prepared = prepare_variant(loaded, resolve_variant(variant_name, config), backend, config=config,
                               model_name=model_name, run_dir=run_dir, retrain=retrain)
    return ModelHandle(model_name=model_name, variant=variant_name, loaded=loaded, kernel_backend=backend,
                       variant_summary=prepared.provenance() if prepared is not None else {},
                       rebuild=(build_handle, (config, model_name, variant_name, backend), {"run_dir": run_dir}))


def _run_unit(handle: ModelHandle, task: Task, context: TaskContext, base_provenance: dict) -> list[Record]:
    seed_everything(context.seed)
    started, clock = _now(), time.perf_counter()
    status, reason, values = "ok", None, []
    try:
        unavailable = task.data_status(context.config)
        if unavailable:
            raise TaskUnavailable(unavailable)
        values = task.run(handle, context)
        undeclared = sorted({v.metric.split("@")[0] for v in values} - set(task.metrics))
        if undeclared:
            raise ValueError(f"task {task.name!r} returned undeclared metric(s) {', '.join(undeclared)}")
    except TaskUnavailable as exc:
        status, reason = "unavailable", str(exc)
    except Exception as exc:  # one failing task must not lose the rest of the suite
        status, reason = "error", f"{type(exc).__name__}: {exc}"
        traceback.print_exc()
    provenance = {
        **base_provenance,
        "model_source": handle.loaded.source.location,
        **({"variant": handle.variant_summary} if handle.variant_summary else {}),
        "started": started,
        "ended": _now(),
        "wall_time_s": round(time.perf_counter() - clock, 3),
    }
    if status != "ok":
        return _error_records(handle.model_name, handle.variant, task, reason, provenance, status=status)
    return [
        Record(model=handle.model_name, variant=handle.variant, task=task.name, metric=v.metric,
               value=float(v.value) if v.status == "ok" else None, status=v.status, reason=v.reason,
               stderr=v.stderr, provenance=provenance, **_uncertainty(v), **declared(task, v.metric))
        for v in values
    ]


def _uncertainty(value: MetricValue) -> dict[str, Any]:
    """``n``, ``ci_low``/``ci_high`` and ``details`` of a record: the task's interval, else value ± 1.96·stderr.

    lm-eval reports a stderr and no interval; its interval is derived here, once, so that every
    view shows the same one and says how it was found.
    """
    details, interval = dict(value.details), value.interval
    if value.status != "ok":
        return {"n": value.n, "ci_low": None, "ci_high": None, "details": details}
    if interval is None and value.stderr:
        interval = (value.value - Z95 * value.stderr, value.value + Z95 * value.stderr)
        details.setdefault("interval", "normal: value ± 1.96 · stderr")
    low, high = interval if interval is not None else (None, None)
    return {"n": value.n, "ci_low": low, "ci_high": high, "details": details}


def declared(task: Task, metric: str) -> dict[str, Any]:
    """What ``task`` declares about ``metric`` (``tokens_per_s@2048`` counts as ``tokens_per_s``), as record fields."""
    base = metric.split("@")[0]
    return {"task_label": task.label, "direction": task.metrics[base], "headline": base == task.headline_metric}


def _error_records(model: str, variant: str, task: Task, reason: str, provenance: dict, *,
                   status: str = "error") -> list[Record]:
    """One value-less record per metric the task declares, saying why there is no value."""
    return [
        Record(model=model, variant=variant, task=task.name, metric=metric, value=None, status=status,
               reason=reason, provenance=provenance, **declared(task, metric))
        for metric in task.metrics
    ]


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
