"""Run directories as pandas frames: one row per record, and one row per training-log step.

Every view (tables, plots, leaderboard, paper comparison) starts from the same long frame,
so a record is parsed once: its metric name split into quantity and measuring point, its
provenance flattened into columns, and what its task declares about it (label, direction,
headline) taken from the record. The views then only select and pivot.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import pandas as pd

from lizard_bench.report.metrics import split_metric
from lizard_bench.report.pairing import items_of
from lizard_bench.report.runs import ReportError, Run
from lizard_bench.results.store import safe_name

RECORD_COLUMNS = (
    "run", "model", "variant", "task", "task_label", "metric", "base_metric", "headline", "context_length", "depth",
    "value", "stderr", "n", "interval", "items", "status", "reason", "direction", "details", "git_commit", "versions",
    "device", "device_name", "kernel_backend", "seed", "config_hash", "started", "ended", "wall_time_s",
)
TRAINING_COLUMNS = ("run", "model", "variant", "stage", "step", "loss", "lr", "tokens", "time_s")
PROVENANCE_COLUMNS = ("commit", "versions", "device", "backend", "date")


def records_frame(runs: list[Run]) -> pd.DataFrame:
    """All records of ``runs``, one row each, with the metric name parsed and provenance flattened."""
    rows = []
    for run in runs:
        for record in run.records:
            name = split_metric(record.metric)
            prov = record.provenance
            label, headline = record.task_label, record.headline
            if label is None or headline is None:  # a record from before records carried them (schema 1)
                registered_label, headline_metric = registered_task(record.task)
                label = label or registered_label
                headline = name.base == headline_metric if headline is None else headline
            rows.append({
                "run": run.run_id,
                "model": record.model,
                "variant": record.variant,
                "task": record.task,
                "task_label": label,
                "metric": record.metric,
                "base_metric": name.base,
                "headline": headline,
                "context_length": record.details.get("context_length", name.context_length),
                "depth": record.details.get("depth", name.depth),
                "value": record.value,
                "stderr": record.stderr,
                "n": record.n,
                "interval": record.interval,
                "items": items_of(run.path, record),  # per-item values, for paired differences; None without
                "status": record.status,
                "reason": record.reason,
                "direction": record.direction,
                "details": record.details,
                "git_commit": prov.get("git_commit"),
                "versions": prov.get("versions") or {},
                "device": prov.get("device"),
                "device_name": prov.get("device_name"),
                "kernel_backend": prov.get("kernel_backend"),
                "seed": prov.get("seed"),
                "config_hash": prov.get("config_hash"),
                "started": prov.get("started"),
                "ended": prov.get("ended"),
                "wall_time_s": prov.get("wall_time_s"),
            })
    frame = pd.DataFrame(rows, columns=list(RECORD_COLUMNS))
    frame["headline"] = frame["headline"].astype(bool)
    frame["value"] = pd.to_numeric(frame["value"])
    frame["stderr"] = pd.to_numeric(frame["stderr"])
    frame["context_length"] = pd.to_numeric(frame["context_length"]).astype("Int64")
    frame["depth"] = pd.to_numeric(frame["depth"])
    return frame


@cache
def registered_task(task: str) -> tuple[str, str | None]:
    """(label, headline metric) of a registered task, for records written before records carried them
    (schema version 1); a task no longer registered is labelled by its name and has no headline."""
    from lizard_bench.errors import UnknownNameError
    from lizard_bench.tasks.registry import get_task

    try:
        declared = get_task(task)
    except UnknownNameError:
        return task, None
    return declared.label, declared.headline_metric


def task_labels(frame: pd.DataFrame) -> dict[str, str]:
    """Task name -> the label its records carry (the first one seen, should runs disagree)."""
    first = frame.drop_duplicates("task")
    return dict(zip(first["task"], first["task_label"], strict=True))


def row_keys(frame: pd.DataFrame) -> list[str]:
    """The columns that name a table row: (model, variant), plus the run when runs measured the same thing.

    Reports built from several runs usually combine them (the teacher from one run, a
    linearized variant from another); only when two runs hold the same measurement must the
    rows stay apart, or one number would silently hide the other.
    """
    duplicated = frame.duplicated(subset=["model", "variant", "task", "metric"], keep=False).any()
    return ["model", "variant", "run"] if duplicated else ["model", "variant"]


def provenance_frame(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Per table row: the commit(s), package versions, device, kernel backend and date that produced it."""
    rows = []
    for key, group in frame.groupby(keys, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        started = sorted(s for s in group["started"].dropna().astype(str))
        rows.append({
            **dict(zip(keys, key, strict=True)),
            "run": ", ".join(_unique(group["run"])),
            "commit": ", ".join(_unique(group["git_commit"])) or "unknown",
            "versions": "; ".join(_unique(_format_versions(v) for v in group["versions"])) or "unknown",
            "device": ", ".join(_unique(group["device_name"].fillna(group["device"]))) or "unknown",
            "backend": ", ".join(_unique(group["kernel_backend"])) or "unknown",
            "date": _format_date(started[0]) if started else "unknown",
        })
    return pd.DataFrame(rows)


def training_frame(runs: list[Run], frame: pd.DataFrame) -> pd.DataFrame:
    """Loss curves from ``<run>/training/<model>/<variant>/stage{1,2}.jsonl``.

    The folder holds the path-safe model name; it is mapped back to the model name the records
    use so curves and table rows share a label. A truncated last line (a run stopped mid-write)
    is skipped; any other malformed line is an error naming the file and line.
    """
    names = _model_names(frame)
    rows = []
    for run in runs:
        root = run.path / "training"
        if not root.is_dir():
            continue
        for log in sorted(root.glob("*/*/stage*.jsonl")):
            model_dir, variant = log.parent.parent.name, log.parent.name
            model = names.get((run.run_id, model_dir), model_dir)
            for entry in _read_jsonl(log):
                rows.append({"run": run.run_id, "model": model, "variant": variant, "stage": log.stem,
                             **{k: entry.get(k) for k in ("step", "loss", "lr", "tokens", "time_s")}})
    training = pd.DataFrame(rows, columns=list(TRAINING_COLUMNS))
    for column in ("step", "loss", "lr", "tokens", "time_s"):
        training[column] = pd.to_numeric(training[column])
    return training


STAGE_COLUMNS = ("stage1_start", "stage1_end", "stage2_start", "stage2_end", "teacher_lm_loss")


def training_summaries(runs: list[Run], frame: pd.DataFrame) -> pd.DataFrame:
    """What each linearized variant's training achieved, from ``<run>/training/<model>/<variant>/summary.json``.

    One row per (run, model, variant): the held-out stage-1 attention MSE and stage-2 LM loss
    at the start and end of each stage, and the teacher's held-out LM loss on the same windows.
    """
    names = _model_names(frame)
    rows = []
    for run in runs:
        for path in sorted((run.path / "training").glob("*/*/summary.json")):
            try:
                summary = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as exc:
                raise ReportError(f"{path}: unreadable training summary ({exc})") from None
            stages = summary.get("stages") or {}
            model_dir = path.parent.parent.name
            row = {"run": run.run_id, "model": names.get((run.run_id, model_dir), model_dir),
                   "variant": path.parent.name, "teacher_lm_loss": summary.get("teacher_lm_loss")}
            for stage in ("stage1", "stage2"):
                row[f"{stage}_start"] = (stages.get(stage) or {}).get("start")
                row[f"{stage}_end"] = (stages.get(stage) or {}).get("end")
            rows.append(row)
    return pd.DataFrame(rows, columns=["run", "model", "variant", *STAGE_COLUMNS])


def _model_names(frame: pd.DataFrame) -> dict[tuple[str, str], str]:
    """(run, path-safe model folder) -> the model name the records use."""
    pairs = frame[["run", "model"]].drop_duplicates().itertuples(index=False)
    return {(run, safe_name(model)): model for run, model in pairs}


def _read_jsonl(path: Path) -> list[dict]:
    lines = path.read_text(encoding="utf-8").splitlines()
    entries = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as exc:
            if number == len(lines):
                break
            raise ReportError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
        if not isinstance(entry, dict) or "step" not in entry or "loss" not in entry:
            raise ReportError(f"{path}:{number}: each line must be an object with 'step' and 'loss'")
        entries.append(entry)
    return entries


def _unique(values) -> list[str]:
    seen: list[str] = []
    for value in values:
        if value is None or (isinstance(value, float) and pd.isna(value)):
            continue
        text = str(value)
        if text and text not in seen:
            seen.append(text)
    return seen


def _format_versions(versions) -> str:
    if not isinstance(versions, dict):
        return str(versions) if versions else ""
    return ", ".join(f"{name} {version}" for name, version in versions.items() if version)


def _format_date(started: str) -> str:
    try:
        stamp = pd.Timestamp(started)
    except ValueError:
        return started
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC")
        return stamp.strftime("%Y-%m-%d %H:%M UTC")
    return stamp.strftime("%Y-%m-%d %H:%M")
