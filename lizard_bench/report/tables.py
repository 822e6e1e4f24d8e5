"""Result tables: the paper-style main table, every metric, efficiency, long context; as Markdown, CSV, LaTeX.

Each table is kept twice: ``raw`` (numbers in display units, the status word where a record
is not 'ok', None where nothing was measured) for CSV and sorting, and ``display`` (strings)
for Markdown, LaTeX and HTML. A failed or out-of-memory measurement therefore shows as
``oom``/``error`` everywhere and never as a blank or a zero, and it never enters an average.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from lizard_bench.efficiency.load import NOISY_CORES
from lizard_bench.report.loading import row_keys, task_labels
from lizard_bench.report.metrics import (
    EFFICIENCY_TASKS,
    FIVE_TASKS,
    LONG_CONTEXT_TASKS,
    PAPER_TASKS,
    TEACHER_VARIANT,
    display_scale,
    format_number,
    interval_text,
    is_fraction,
    metric_label,
    quantity_label,
)
from lizard_bench.report.pairing import DEFAULT_SEED, Scored, difference

MISSING = "—"  # nothing was measured for this cell (as opposed to a measurement that failed)
PASSKEY_SPLITS = ("exact_match_within_window", "exact_match_beyond_window")


@dataclass
class Table:
    """One report table; ``keys`` are the leading columns that name a row."""

    name: str
    title: str
    raw: pd.DataFrame
    display: pd.DataFrame
    keys: list[str]
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Cell:
    value: float | None  # scaled to display units; None unless the record is 'ok'
    status: str
    base: str
    text: str  # the value with its 95 % interval (or ± stderr) where recorded, else the status word

    @property
    def raw(self) -> float | str:
        return self.value if self.status == "ok" else self.status


# ---------------------------------------------------------------------------------------------- main table


def main_table(frame: pd.DataFrame) -> Table | None:
    """Rows (model, variant), one column per task (its primary metric), the paper's averages and recovery."""
    scalar = headline_scalars(frame)
    if scalar.empty:
        return None
    keys = row_keys(frame)
    columns = primary_columns(scalar)
    primary = {task: metric for task, metric, _ in columns}
    labels = task_labels(scalar)
    cells = _cells(scalar, keys)
    rows = ordered_rows(scalar, keys)
    has_paper_tasks = any(task in PAPER_TASKS for task, _, _ in columns)
    averages = [("avg 5 tasks (%)", FIVE_TASKS), ("avg 6 tasks (%)", PAPER_TASKS)] if has_paper_tasks else []
    with_recovery = bool(averages) and any(row[keys.index("variant")] != TEACHER_VARIANT for row in rows)

    records = {(*(r[k] for k in keys), r["task"], r["metric"]): r for r in scalar.to_dict("records")}
    with_delta = any(row[keys.index("variant")] != TEACHER_VARIANT for row in rows) and any(
        row[keys.index("variant")] == TEACHER_VARIANT for row in rows)
    raw_rows, text_rows = [], []
    for row in rows:
        raw = dict(zip(keys, row, strict=True))
        text = dict(raw)
        row_cells, delta_raw, delta_text = {}, {}, {}
        teacher = _teacher_row(row, rows, keys)
        for task, metric, direction in columns:
            label = metric_label(labels[task], metric, direction)
            cell = cells.get((*row, task, metric))
            row_cells[task] = cell
            raw[label] = cell.raw if cell else None
            text[label] = cell.text if cell else MISSING
            if with_delta:  # after the averages: the paper's columns come first
                delta = None if teacher in (None, row) else _delta_vs_teacher(
                    records.get((*teacher, task, metric)), records.get((*row, task, metric)))
                delta_raw[f"Δ {label}"] = delta[0] if delta else None
                delta_text[f"Δ {label}"] = delta[1] if delta else MISSING
        for label, tasks in averages:
            mean, used = _mean_of_ok(row_cells, tasks)
            raw[label] = mean
            text[label] = _partial(mean, used, len(tasks))
        if with_recovery:
            teacher = _teacher_row(row, rows, keys)
            for label, tasks in averages:
                recovery_label = label.replace("avg", "recovery").replace("(%)", "(% of teacher)")
                if teacher is None or row[keys.index("variant")] == TEACHER_VARIANT:
                    raw[recovery_label], text[recovery_label] = None, MISSING
                    continue
                teacher_cells = {task: cells.get((*teacher, task, primary[task])) for task in tasks if task in primary}
                recovery, used = _recovery(row_cells, teacher_cells, tasks)
                raw[recovery_label] = recovery
                text[recovery_label] = _partial(recovery, used, len(tasks))
        raw_rows.append({**raw, **delta_raw})
        text_rows.append({**text, **delta_text})

    notes = ["Accuracies in percentage points; ↓ marks metrics where lower is better.",
             f"{MISSING} = not measured; a status word (oom, error, unavailable, timeout) = measured and failed."]
    if averages:
        notes.append("Averages as in the paper: 5 tasks without MMLU, 6 with; (k/n) = over the k tasks with a "
                     "result, failed ones excluded.")
    if with_recovery:
        notes.append("Recovery = the variant's average over the teacher's average on the same tasks, in percent.")
    if with_delta:
        notes.append(DELTA_NOTE)
    return Table("main", "Results", pd.DataFrame(raw_rows), pd.DataFrame(text_rows), keys, notes)


DELTA_NOTE = ("Δ = the variant minus the teacher, with its 95 % interval: paired over the items both scored "
              "(Newcombe's paired score interval for exact match, a paired bootstrap over windows or prompts "
              "otherwise); † unpaired (no per-item outcomes: the two stderr combined); * the interval excludes 0.")


def _delta_vs_teacher(teacher: dict | None, variant: dict | None) -> tuple[float, str] | None:
    """(Δ in display units, its text with interval and marks), or None when either side has no value."""
    if teacher is None or variant is None or teacher["status"] != "ok" or variant["status"] != "ok":
        return None
    seed = teacher.get("seed")
    found = difference(_scored(teacher), _scored(variant), teacher.get("items"), variant.get("items"),
                       seed if isinstance(seed, int) else DEFAULT_SEED)
    base = variant["base_metric"]
    scale = display_scale(base)
    text = f"{found.value * scale:+.3g}"
    if found.interval is not None:
        low, high = (f"{bound * scale:+.3g}" for bound in found.interval)
        text += f" [{low}, {high}]"
    return found.value * scale, text + ("" if found.paired else " †") + (" *" if found.significant else "")


def _scored(row: dict) -> Scored:
    return Scored(row["value"], None if pd.isna(row["stderr"]) else float(row["stderr"]), row["interval"])


def headline_scalars(frame: pd.DataFrame) -> pd.DataFrame:
    """The quality records a main table shows: every metric without a point, and for a task whose metrics all
    have one (``length_extrapolation``'s ``context_gain@L``) its headline at the longest length the teacher
    measured (the longest overall without a teacher), so a sweep's verdict is in the table too."""
    quality = frame[~frame["task"].isin(EFFICIENCY_TASKS)]
    plain = quality[quality["metric"] == quality["base_metric"]]
    parts = [plain]
    for task in quality.loc[~quality["task"].isin(plain["task"]), "task"].unique():
        sweep = quality[(quality["task"] == task) & quality["headline"] & quality["depth"].isna()
                        & quality["context_length"].notna()]
        if sweep.empty:
            continue
        teacher_ok = sweep[(sweep["variant"] == TEACHER_VARIANT) & (sweep["status"] == "ok")]["context_length"]
        longest = (teacher_ok if not teacher_ok.empty else sweep["context_length"]).max()
        parts.append(sweep[sweep["context_length"] == longest])
    return pd.concat(parts) if len(parts) > 1 else plain


def primary_columns(scalar: pd.DataFrame) -> list[tuple[str, str, str]]:
    """(task, metric, direction) for each task: its headline metric, or the first it reported if that is missing."""
    columns = []
    for task, group in scalar.groupby("task", sort=False):
        headline = group[group["headline"]]
        metric = (headline if not headline.empty else group)["metric"].iloc[0]
        direction = group.loc[group["metric"] == metric, "direction"].iloc[0]
        columns.append((task, metric, direction))
    return sorted(columns, key=lambda column: _task_order(*column[:2]))


def _task_order(task: str, metric: str) -> tuple[int, int, str]:
    if task in PAPER_TASKS:
        return (0, PAPER_TASKS.index(task), task)
    if task in LONG_CONTEXT_TASKS:
        return (2, 0, task)
    return (1 if is_fraction(metric) else 3, 0, task)


def _cells(frame: pd.DataFrame, keys: list[str]) -> dict[tuple, _Cell]:
    cells = {}
    for record in frame.to_dict("records"):
        value, text = _value_with_error(record)
        cells[(*(record[k] for k in keys), record["task"], record["metric"])] = _Cell(
            value if record["status"] == "ok" else None, record["status"], record["base_metric"], text)
    return cells


def ordered_rows(frame: pd.DataFrame, keys: list[str]) -> list[tuple]:
    """Models in order of appearance; within a model the teacher first, then variants by name."""
    rows = list(dict.fromkeys(tuple(r) for r in frame[keys].itertuples(index=False)))
    model_order = {model: i for i, model in enumerate(dict.fromkeys(r[0] for r in rows))}
    return sorted(rows, key=lambda r: (model_order[r[0]], r[1] != TEACHER_VARIANT, r[1], *r[2:]))


def _teacher_row(row: tuple, rows: list[tuple], keys: list[str]) -> tuple | None:
    """The teacher row of the same model, from the same run when the rows are split by run."""
    candidates = [r for r in rows if r[0] == row[0] and r[1] == TEACHER_VARIANT]
    if "run" in keys:
        same_run = [r for r in candidates if r[keys.index("run")] == row[keys.index("run")]]
        candidates = same_run or candidates
    return candidates[0] if candidates else None


def _mean_of_ok(cells: dict[str, _Cell | None], tasks: tuple[str, ...]) -> tuple[float | None, int]:
    values = [cells[t].value for t in tasks if cells.get(t) is not None and cells[t].status == "ok"]
    return (sum(values) / len(values), len(values)) if values else (None, 0)


def _recovery(cells: dict, teacher: dict, tasks: tuple[str, ...]) -> tuple[float | None, int]:
    common = [t for t in tasks if all(c.get(t) is not None and c[t].status == "ok" for c in (cells, teacher))]
    if not common:
        return None, 0
    student_mean = sum(cells[t].value for t in common) / len(common)
    teacher_mean = sum(teacher[t].value for t in common) / len(common)
    return (100.0 * student_mean / teacher_mean if teacher_mean else None), len(common)


def _partial(value: float | None, used: int, total: int) -> str:
    if value is None:
        return MISSING
    text = f"{value:.1f}"
    return text if used == total else f"{text} ({used}/{total})"


# ---------------------------------------------------------------------------------------------- other tables


def all_metrics_table(frame: pd.DataFrame) -> Table | None:
    """Every scalar metric of every task (with ± standard error), for readers who need more than the main table."""
    scalar = frame[frame["metric"] == frame["base_metric"]]
    if scalar.empty:
        return None
    keys = row_keys(frame)
    columns = sorted(
        dict.fromkeys(zip(scalar["task"], scalar["metric"], scalar["direction"], strict=True)),
        key=lambda c: (_task_order(c[0], c[1]), c[1]),
    )
    by_key = {(*(r[k] for k in keys), r["task"], r["metric"]): r for r in scalar.to_dict("records")}
    labels = task_labels(scalar)
    raw_rows, text_rows = [], []
    for row in ordered_rows(scalar, keys):
        raw = dict(zip(keys, row, strict=True))
        text = dict(raw)
        for task, metric, direction in columns:
            label = metric_label(labels[task], metric, direction)
            record = by_key.get((*row, task, metric))
            raw[label], text[label] = _value_with_error(record)
        raw_rows.append(raw)
        text_rows.append(text)
    notes = ["Value ± standard error where the task reports one, or [low, high] where it reports a 95 % interval "
             "(Wilson for exact match); fractions in percentage points."]
    return Table("all_metrics", "All metrics", pd.DataFrame(raw_rows), pd.DataFrame(text_rows), keys, notes)


def _value_with_error(record: dict | None) -> tuple[float | str | None, str]:
    if record is None:
        return None, MISSING
    if record["status"] != "ok":
        return record["status"], record["status"]
    scale = display_scale(record["base_metric"])
    value = record["value"] * scale
    text = format_number(value, record["base_metric"])
    interval = interval_text(record["interval"], record["base_metric"])
    if interval is not None:
        text += f" {interval}"
    elif pd.notna(record["stderr"]):
        text += f" ± {record['stderr'] * scale:.2g}"
    return value, text


NOISY_MARK = " *"


def is_noisy(record: dict) -> bool:
    """A point measured on a busy machine (``efficiency/load.py``); records from before the field are not."""
    return record["status"] == "ok" and isinstance(record["details"], dict) and bool(record["details"].get("noisy"))


def efficiency_table(frame: pd.DataFrame) -> Table | None:
    """Rows (model, variant, context length); columns prefill/decode speed and memory, in tokens/s, s and MiB."""
    points = frame[frame["task"].isin(EFFICIENCY_TASKS) & frame["context_length"].notna()]
    if points.empty:
        return None
    keys = row_keys(frame)
    columns = sorted(dict.fromkeys(zip(points["task"], points["base_metric"], strict=True)),
                     key=lambda c: (EFFICIENCY_TASKS.index(c[0]), c[1]))
    by_key = {(*(r[k] for k in keys), int(r["context_length"]), r["task"], r["base_metric"]): r
              for r in points.to_dict("records")}
    lengths = sorted(int(n) for n in points["context_length"].unique())
    labels = task_labels(points)
    raw_rows, text_rows = [], []
    for row in ordered_rows(points, keys):
        for length in lengths:
            records = [by_key.get((*row, length, task, base)) for task, base in columns]
            if not any(records):
                continue
            raw = {**dict(zip(keys, row, strict=True)), "context length": length}
            text = dict(raw)
            for (task, base), record in zip(columns, records, strict=True):
                label = quantity_label(base) if task == "memory" else f"{labels[task]} {quantity_label(base)}"
                raw[label], text[label] = _value_with_error(record) if record else (None, MISSING)
                if record is not None and record["status"] == "ok":
                    text[label] = text[label].split(" ± ")[0] + (NOISY_MARK if is_noisy(record) else "")
            raw_rows.append(raw)
            text_rows.append(text)
    notes = ["Throughput in tokens per second (higher is better); latency in seconds and memory in MiB "
             "(lower is better). oom/timeout = the measurement ran out of memory or time."]
    if any(is_noisy(record) for record in points.to_dict("records")):
        notes.append(f"{NOISY_MARK.strip()} measured while other processes kept more than {NOISY_CORES:g} of a core "
                     "busy (details.other_cpu_cores): a lower bound for speed; rerun on an idle machine to quote it.")
    methods = sorted({str(d["method"]) for d in points["details"] if isinstance(d, dict) and d.get("method")})
    if methods:
        notes.append("Memory measured by: " + ", ".join(methods) + ".")
    return Table("efficiency", "Efficiency", pd.DataFrame(raw_rows), pd.DataFrame(text_rows),
                 [*keys, "context length"], notes)


def long_context_table(frame: pd.DataFrame) -> Table | None:
    """Passkey / needle exact match per context length (rows) and insertion depth (columns)."""
    points = frame[frame["task"].isin(LONG_CONTEXT_TASKS) & frame["context_length"].notna() & frame["depth"].notna()]
    if points.empty:
        return None
    keys = row_keys(frame)
    depths = sorted(float(d) for d in points["depth"].unique())
    by_key = {(*(r[k] for k in keys), r["task"], int(r["context_length"]), float(r["depth"])): r
              for r in points.to_dict("records")}
    raw_rows, text_rows = [], []
    for row in ordered_rows(points, keys):
        for task in [t for t in LONG_CONTEXT_TASKS if t in set(points["task"])]:
            for length in sorted(int(n) for n in points["context_length"].unique()):
                records = [by_key.get((*row, task, length, depth)) for depth in depths]
                if not any(records):
                    continue
                raw = {**dict(zip(keys, row, strict=True)), "task": task, "context length": length}
                text = dict(raw)
                for depth, record in zip(depths, records, strict=True):
                    label = f"depth {depth:g} (%)"
                    raw[label], text[label] = _value_with_error(record)
                    text[label] = text[label].split(" ± ")[0]
                raw_rows.append(raw)
                text_rows.append(text)
    notes = ["Exact-match retrieval in percent, by context length (tokens) and insertion depth (0 = start); "
             "[low, high] = 95 % Wilson interval where recorded."]
    return Table("long_context", "Long context", pd.DataFrame(raw_rows), pd.DataFrame(text_rows),
                 [*keys, "task", "context length"], notes)


# ---------------------------------------------------------------------------------------------- writing


def linearization_table(frame: pd.DataFrame, summaries: pd.DataFrame) -> Table | None:
    """The ablation view: per variant, what training reached and what it bought.

    Columns: held-out stage-1 attention MSE and stage-2 LM loss (start → end), held-out
    perplexity, and passkey exact match per length, within the variant's window and beyond it.
    """
    quality = frame[(frame["task"] == "corpus_perplexity") & (frame["metric"] == "perplexity")
                    | frame["base_metric"].isin(PASSKEY_SPLITS) & (frame["task"] == "passkey")]
    if summaries.empty:  # no linearized variant was trained or loaded in these runs
        return None
    keys = ["model", "variant"]
    rows = ordered_rows(pd.concat([quality[keys], summaries[keys]]), keys)
    lengths = sorted(int(n) for n in quality["context_length"].dropna().unique())
    by_key = {(r["model"], r["variant"], r["metric"]): r for r in quality.to_dict("records")}
    trained = {(r["model"], r["variant"]): r for r in summaries.to_dict("records")}
    raw_rows, text_rows = [], []
    for row in rows:
        raw, text = dict(zip(keys, row, strict=True)), dict(zip(keys, row, strict=True))
        summary = trained.get(row, {})
        for label, stage in (("stage-1 MSE", "stage1"), ("stage-2 LM loss", "stage2")):
            start, end = summary.get(f"{stage}_start"), summary.get(f"{stage}_end")
            raw[f"{label} start"], raw[f"{label} end"] = start, end
            text[label] = MISSING if start is None or pd.isna(start) else f"{start:.3g} → {end:.3g}"
        raw["perplexity"], text["perplexity"] = _value_with_error(by_key.get((*row, "perplexity")))
        for length in lengths:
            for split, word in zip(PASSKEY_SPLITS, ("within", "beyond"), strict=True):
                record = by_key.get((*row, f"{split}@{length}"))
                label = f"passkey {word} @{length} (%)"
                raw[label], text[label] = _value_with_error(record)
                if record is not None:
                    text[label] = f"{text[label].split(' ± ')[0]} ({record['details'].get('trials', '?')})"
        raw_rows.append(raw)
        text_rows.append(text)
    notes = ["Stage-1: held-out attention MSE (mean over layers); stage-2: held-out LM loss in nats; start → end.",
             "Passkey: exact match in percent, split by whether the passkey starts within the variant's window "
             "(128 tokens for the teacher) or beyond it; in parentheses the number of passkeys, in square brackets "
             "the 95 % Wilson interval where recorded."]
    return Table("linearization", "Linearization: training and what it recovers", pd.DataFrame(raw_rows),
                 pd.DataFrame(text_rows), keys, notes)


def write_table(table: Table, out_dir: Path) -> dict[str, Path]:
    """``<name>.md``, ``<name>.csv`` and ``<name>.tex`` under ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {fmt: out_dir / f"{table.name}.{fmt}" for fmt in ("md", "csv", "tex")}
    paths["md"].write_text(f"## {table.title}\n\n{to_markdown(table)}\n", encoding="utf-8")
    table.raw.to_csv(paths["csv"], index=False)
    paths["tex"].write_text(to_latex(table), encoding="utf-8")
    return paths


def to_markdown(table: Table) -> str:
    """A GitHub-flavoured pipe table (pandas, through tabulate) with the notes below it; numbers right-aligned."""
    frame = table.display.rename(columns=lambda c: _md_cell(str(c))).map(lambda v: _md_cell(str(v)))
    align = ["left" if c in table.keys else "right" for c in table.display.columns]
    body = frame.to_markdown(index=False, tablefmt="pipe", colalign=align, disable_numparse=True)
    return "\n\n".join([body, *table.notes])


def to_latex(table: Table) -> str:
    """A booktabs tabular (pandas), with arrows and percent signs escaped for plain pdflatex."""
    frame = table.display.copy()
    frame.columns = [_latex_escape(str(c)) for c in frame.columns]
    frame = frame.map(lambda v: _latex_escape(str(v)))
    alignment = "".join("l" if c in table.keys else "r" for c in table.display.columns)
    body = frame.to_latex(index=False, escape=False, column_format=alignment)
    caption = _latex_escape(" ".join([table.title + ".", *table.notes]))
    return f"% {table.title}: generated by lizard-bench report; needs \\usepackage{{booktabs}}\n" \
           f"% {caption}\n{body}"


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
    "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "↓": r"$\downarrow$", "±": r"$\pm$", "—": "--",
}


def _latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)
