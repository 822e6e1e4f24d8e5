"""The paper's published numbers, and a "paper vs this run" table where a run measured the same thing.

Reproduction is the first thing users check, so the published tables ship inside the
package (``data/paper_tables.csv``, copied from the paper's Tables 1, 2 and 9). Runs name
models by hub id or path while the paper prints short names, hence a small alias map;
variants map to the paper's row suffixes (``softmax`` is the teacher row itself).
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from io import StringIO

import pandas as pd

from lizard_bench.report.metrics import PAPER_TASKS, format_number
from lizard_bench.report.tables import MISSING, Table

# Normalized model name (hub organisation dropped, lower case) -> the paper's base model name.
MODEL_ALIASES: dict[str, str] = {
    "meta-llama-3-8b": "LLaMA-3-8B",
    "llama-3-8b": "LLaMA-3-8B",
    "mistral-7b-v0.1": "Mistral-7B",
    "mistral-7b": "Mistral-7B",
    "gemma-7b": "Gemma-7B",
    "llama-3.2-1b": "Llama-3.2-1B",
    "llama-3.2-3b": "Llama-3.2-3B",
}

# Variant -> suffix of the paper's row name ("" = the teacher row).
VARIANT_SUFFIXES: dict[str, str] = {
    "softmax": "",
    "lizard": "Lizard",
    "lolcats": "LoLCATs",
    "lizard-50pct": "Lizard-50pct",
}


@cache
def paper_tables() -> pd.DataFrame:
    """The published accuracy tables, values in percentage points (as printed)."""
    text = resources.files("lizard_bench.report").joinpath("data/paper_tables.csv").read_text(encoding="utf-8")
    return pd.read_csv(StringIO(text), comment="#", dtype={"family": str}, keep_default_na=True)


def paper_model(model: str) -> str | None:
    """The paper's base model name for a run's model id (``unsloth/Llama-3.2-1B`` -> ``Llama-3.2-1B``)."""
    name = re.split(r"[/\\]", model.rstrip("/\\"))[-1].lower()
    return MODEL_ALIASES.get(name)


def paper_row(model: str, variant: str) -> pd.Series | None:
    """The published row for (model, variant), or None when the paper has none."""
    base = paper_model(model)
    suffix = VARIANT_SUFFIXES.get(variant)
    if base is None or suffix is None:
        return None
    name = f"{base}-{suffix}" if suffix else base
    rows = paper_tables()
    match = rows[rows["model"] == name]
    return None if match.empty else match.iloc[0]


def paper_vs_run_table(frame: pd.DataFrame) -> Table | None:
    """Per matched (model, variant, task): the published value, this run's, and the difference in points."""
    # a paper task's headline metric is the one the paper reports (Task.paper_metric)
    scalar = frame[frame["task"].isin(PAPER_TASKS) & (frame["metric"] == frame["base_metric"])
                   & frame["headline"]]
    matched = []
    for record in scalar.to_dict("records"):
        row = paper_row(record["model"], record["variant"])
        if row is None or pd.isna(row[record["task"]]):
            continue
        published = float(row[record["task"]])
        ok = record["status"] == "ok"
        measured = record["value"] * 100 if ok else None
        raw = {"model": record["model"], "variant": record["variant"], "run": record["run"],
               "paper row": f"{row['model']} (Table {row['table']})", "task": record["task_label"],
               "metric": record["metric"], "paper (%)": published,
               "this run (%)": measured if ok else record["status"],
               "Δ (points)": measured - published if ok else None}
        text = {**raw, "paper (%)": f"{published:.1f}",
                "this run (%)": format_number(measured, "acc") if ok else record["status"],
                "Δ (points)": _signed(measured - published) if ok else MISSING}
        order = (record["model"], record["variant"] != "softmax", record["variant"], record["run"],
                 PAPER_TASKS.index(record["task"]))
        matched.append((order, raw, text))
    if not matched:
        return None
    matched.sort(key=lambda item: item[0])
    notes = ["Published numbers: Lizard paper (arXiv 2507.09025 v4), lm-eval, metric per task as in its Table 1.",
             "Δ = this run minus the paper, in percentage points."]
    return Table("paper_vs_run", "Paper vs this run",
                 pd.DataFrame([raw for _, raw, _ in matched]), pd.DataFrame([text for _, _, text in matched]),
                 ["model", "variant", "run", "paper row", "task", "metric"], notes)


def _signed(delta: float) -> str:
    """One decimal with a sign, without printing a rounding-noise "-0.0"."""
    return f"{0.0 if abs(delta) < 0.05 else delta:+.1f}"
