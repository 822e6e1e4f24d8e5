"""Figures for reports and the leaderboard, each written as PNG (for slides) and SVG (for print and HTML).

Readers compare a linearized model with its teacher, often on paper: every variant keeps one
colour and marker in every figure (Okabe-Ito colours, distinct in greyscale by marker and
line style), axes carry units, failed measurements are marked where they would have been
instead of silently missing. Figures are built on ``matplotlib.figure.Figure`` directly, so
no global pyplot state or GUI backend is involved and the functions are safe in a test run.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

from lizard_bench.report.loading import row_keys, task_labels
from lizard_bench.report.metrics import (
    EFFICIENCY_TASKS,
    LONG_CONTEXT_TASKS,
    MIB,
    TEACHER_VARIANT,
    display_scale,
    is_fraction,
    quantity_label,
)
from lizard_bench.report.tables import is_noisy, ordered_rows, primary_columns
from lizard_bench.report.uncertainty import value_interval

STYLE = {
    "font.size": 11,
    "axes.titlesize": 12,
    "axes.labelsize": 11,
    "legend.fontsize": 9,
    "xtick.labelsize": 10,
    "ytick.labelsize": 10,
    "axes.grid": True,
    "axes.axisbelow": True,
    "grid.alpha": 0.35,
    "grid.linewidth": 0.6,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "lines.linewidth": 2.0,
    "lines.markersize": 6,
    "svg.hashsalt": "lizard-bench",  # stable SVG ids, so regenerated figures diff cleanly
    "savefig.bbox": "tight",
}
VARIANT_COLORS = {TEACHER_VARIANT: "#3b3b3b", "lizard": "#D55E00", "lolcats": "#0072B2"}
OTHER_COLORS = ("#009E73", "#E69F00", "#CC79A7", "#56B4E9", "#F0E442")
VARIANT_MARKERS = {TEACHER_VARIANT: "o", "lizard": "s", "lolcats": "^"}
OTHER_MARKERS = ("D", "v", "P", "X", "h")
LINE_STYLES = ("-", "--", ":", "-.")
HATCHES = ("", "//", "..", "xx")


class SeriesStyle:
    """Colour and marker per variant; line style and hatch per model (and per run when rows are split by run)."""

    def __init__(self, frame: pd.DataFrame) -> None:
        variants = [v for v in dict.fromkeys(frame["variant"]) if v not in VARIANT_COLORS]
        self.colors = {**VARIANT_COLORS, **{v: OTHER_COLORS[i % len(OTHER_COLORS)] for i, v in enumerate(variants)}}
        self.markers = {**VARIANT_MARKERS, **{v: OTHER_MARKERS[i % len(OTHER_MARKERS)] for i, v in enumerate(variants)}}
        self.models = {m: i for i, m in enumerate(dict.fromkeys(frame["model"]))}
        self.runs = {r: i for i, r in enumerate(dict.fromkeys(frame["run"]))} if "run" in frame else {}

    def _index(self, model: str, run: str | None) -> int:
        return self.models.get(model, 0) + (self.runs.get(run, 0) if run is not None else 0)

    def line(self, model: str, variant: str, run: str | None = None) -> dict:
        index = self._index(model, run)
        return {"color": self.colors[variant], "marker": self.markers[variant],
                "linestyle": LINE_STYLES[index % len(LINE_STYLES)]}

    def bar(self, model: str, variant: str, run: str | None = None) -> dict:
        index = self._index(model, run)
        return {"color": self.colors[variant], "hatch": HATCHES[index % len(HATCHES)], "edgecolor": "white"}


def ordered_groups(data: pd.DataFrame, keys: list[str]) -> list[tuple[tuple, pd.DataFrame]]:
    """(row, records) per table row, in table order (teacher first), so legends match the tables."""
    groups = dict(list(data.groupby(keys, sort=False)))
    return [(row, groups[row]) for row in ordered_rows(data, keys)]


def series_label(row: tuple, keys: list[str]) -> str:
    return " · ".join(str(part) for part in row)


def write_plots(frame: pd.DataFrame, training: pd.DataFrame, out_dir: Path) -> dict[str, dict[str, Path]]:
    """Every figure the data allows; a figure without data is skipped. Returns name -> {'png', 'svg'}."""
    out_dir.mkdir(parents=True, exist_ok=True)
    style = SeriesStyle(pd.concat([frame[["model", "variant", "run"]], training[["model", "variant", "run"]]]))
    figures: dict[str, Figure | None] = {
        "task_scores": task_scores_figure(frame, style),
        "throughput": throughput_figure(frame, style),
        "memory": memory_figure(frame, style),
        **{f"heatmap_{task}": heatmap_figure(frame, task) for task in LONG_CONTEXT_TASKS},
        "training_loss": training_loss_figure(training, style),
    }
    written = {}
    for name, figure in figures.items():
        if figure is not None:
            written[name] = save_figure(figure, out_dir / name)
    return written


def save_figure(figure: Figure, stem: Path) -> dict[str, Path]:
    paths = {"png": stem.with_suffix(".png"), "svg": stem.with_suffix(".svg")}
    with matplotlib.rc_context(STYLE):
        figure.savefig(paths["png"], dpi=200, metadata={"Software": None})
        figure.savefig(paths["svg"], metadata={"Date": None, "Creator": None})
    return paths


# ---------------------------------------------------------------------------------------------- task scores


def task_scores_figure(frame: pd.DataFrame, style: SeriesStyle) -> Figure | None:
    """Grouped bars: accuracy tasks on one percentage axis, each other task (e.g. perplexity) on its own."""
    scalar = frame[(frame["metric"] == frame["base_metric"]) & ~frame["task"].isin(EFFICIENCY_TASKS)]
    if scalar.empty:
        return None
    keys = row_keys(frame)
    rows = ordered_rows(scalar, keys)
    columns = primary_columns(scalar)
    fraction_columns = [c for c in columns if is_fraction(c[1])]
    other_columns = [c for c in columns if not is_fraction(c[1])]
    panels = ([fraction_columns] if fraction_columns else []) + [[c] for c in other_columns]
    by_key = {(*(r[k] for k in keys), r["task"], r["metric"]): r for r in scalar.to_dict("records")}
    task_names = task_labels(scalar)

    with matplotlib.rc_context(STYLE):
        widths = [max(len(panel), 1) * max(len(rows), 2) * 0.35 + 0.8 for panel in panels]
        figure = Figure(figsize=(max(5.0, sum(widths) + 1.0), 4.6), layout="constrained")
        axes = figure.subplots(1, len(panels), squeeze=False, gridspec_kw={"width_ratios": widths})[0]
        for ax, panel in zip(axes, panels, strict=True):
            _bars(ax, panel, rows, keys, by_key, task_names, style)
        handles, labels = axes[0].get_legend_handles_labels()
        figure.legend(handles, labels, loc="outside lower center", ncols=min(len(rows), 3), frameon=False)
        figure.suptitle("Scores per task and variant")
    return figure


def _bars(ax, panel, rows, keys, by_key, labels: dict[str, str], style: SeriesStyle) -> None:
    width = min(0.8 / len(rows), 0.3)
    positions = np.arange(len(panel))
    start = -width * len(rows) / 2
    annotate = len(rows) * len(panel) <= 24
    for i, row in enumerate(rows):
        offsets = positions + start + width * (i + 0.5)
        for x, (task, metric, _direction) in zip(offsets, panel, strict=True):
            record = by_key.get((*row, task, metric))
            if record is None:
                continue
            if record["status"] != "ok":
                ax.text(x, 0, f" {record['status']}", rotation=90, ha="center", va="bottom", fontsize=8,
                        color=style.colors[row[1]])
                continue
            scale = display_scale(record["base_metric"])
            value = record["value"] * scale
            error = _error_bar(record, scale)
            ax.bar(x, value, width * 0.92, yerr=error, capsize=3, ecolor="black", **style.bar(*row))
            if value == 0:  # a zero bar has no height: a tick on the axis shows it was measured
                ax.plot([x - width * 0.4, x + width * 0.4], [0, 0], color=style.colors[row[1]], linewidth=3,
                        solid_capstyle="butt", clip_on=False)
            if annotate or value == 0:
                top = value if error is None else value + error[1][0]
                ax.annotate(f"{value:.1f}" if is_fraction(metric) else f"{value:.3g}", (x, top),
                            xytext=(0, 2), textcoords="offset points", ha="center", va="bottom", fontsize=7)
    # proxy artists so the legend has one entry per row even if its first bar failed
    for row in rows:
        ax.bar([np.nan], [np.nan], label=series_label(row, keys), **style.bar(*row))
    ax.set_xticks(positions, [labels[task] for task, _, _ in panel])
    ax.grid(axis="x", visible=False)
    task, metric, direction = panel[0]
    if is_fraction(metric):
        ax.set_ylabel("score (%)  ↑ higher is better")
        ax.set_ylim(0, 100)
        ax.set_title("Accuracy" if any(task not in LONG_CONTEXT_TASKS for task, _, _ in panel)
                     else "Retrieval exact match")
    else:
        ax.set_ylabel(f"{metric}  {'↓ lower' if direction == 'lower' else '↑ higher'} is better")
        ax.set_title(f"{labels[task]} {metric}")
        ax.margins(y=0.15)


# ---------------------------------------------------------------------------------------------- efficiency


def throughput_figure(frame: pd.DataFrame, style: SeriesStyle) -> Figure | None:
    """Prefill and decode tokens/s against context length (log-2 axis)."""
    points = frame[frame["task"].isin(("prefill", "decode")) & (frame["base_metric"] == "tokens_per_s")
                   & frame["context_length"].notna()]
    panels = [(task, points[points["task"] == task]) for task in ("prefill", "decode")]
    panels = [(task, data) for task, data in panels if not data.empty]
    if not panels:
        return None
    titles = {"prefill": "Prefill throughput", "decode": "Decode throughput"}
    return _length_figure(frame, panels, titles, "tokens / s  ↑", style, scale=1.0,
                          suptitle="Throughput vs context length")


def memory_figure(frame: pd.DataFrame, style: SeriesStyle) -> Figure | None:
    """Every ``*_bytes`` quantity against context length, in MiB or GiB."""
    points = frame[frame["base_metric"].str.endswith("_bytes") & frame["context_length"].notna()]
    if points.empty:
        return None
    pairs = sorted(dict.fromkeys(zip(points["task"], points["base_metric"], strict=True)),
                   key=lambda p: (EFFICIENCY_TASKS.index(p[0]) if p[0] in EFFICIENCY_TASKS else 9, p))
    # decode and memory both record the cache after the same prefill: one panel of it is enough
    cache_tasks = [task for task, base in pairs if base == "cache_bytes"]
    pairs = [(task, base) for task, base in pairs if base != "cache_bytes" or task == cache_tasks[-1]]
    panels = [(f"{task}:{base}", points[(points["task"] == task) & (points["base_metric"] == base)])
              for task, base in pairs]
    titles = {f"{task}:{base}": quantity_label(base).split(" (")[0].capitalize() for task, base in pairs}
    largest = points.loc[points["status"] == "ok", "value"].max()
    use_gib = pd.notna(largest) and largest >= 4 * 1024 * MIB
    unit, scale = ("GiB", 1 / 1024**3) if use_gib else ("MiB", 1 / MIB)
    return _length_figure(frame, panels, titles, f"memory ({unit})  ↓", style, scale=scale,
                          suptitle="Memory vs context length")


def _error_bar(record: dict, scale: float) -> list[list[float]] | None:
    """The bar's 95 % interval as matplotlib's [[below], [above]] (it may be asymmetric), else ± 1.96·stderr."""
    interval = value_interval(record["value"], None if pd.isna(record["stderr"]) else record["stderr"],
                              record["interval"])
    if interval is None:
        return None
    value = record["value"]
    return [[max(value - interval[0], 0.0) * scale], [max(interval[1] - value, 0.0) * scale]]


def _length_figure(frame, panels, titles, ylabel, style: SeriesStyle, scale: float, suptitle: str) -> Figure:
    keys = row_keys(frame)
    lengths = sorted({int(n) for _, data in panels for n in data["context_length"].unique()})
    with matplotlib.rc_context(STYLE):
        figure = Figure(figsize=(5.2 * len(panels) + 0.5, 4.4), layout="constrained")
        axes = figure.subplots(1, len(panels), squeeze=False)[0]
        for ax, (name, data) in zip(axes, panels, strict=True):
            ringed = False
            for row, group in ordered_groups(data, keys):
                group = group.sort_values("context_length")
                ok = group[group["status"] == "ok"]
                x, y = ok["context_length"].astype(float), ok["value"] * scale
                ax.plot(x, y, label=series_label(row, keys), **style.line(*row))
                spread = _min_max(ok, scale)
                if spread is not None:  # the repeats' range, recorded with every timed point
                    ax.errorbar(x, y, yerr=[np.maximum(y - spread[0], 0), np.maximum(spread[1] - y, 0)], fmt="none",
                                ecolor=style.colors[row[1]],
                                capsize=3, linewidth=1)
                ringed = _mark_noisy(ax, ok, scale, style.colors[row[1]]) or ringed
                _mark_failures(ax, group[group["status"] != "ok"], style.colors[row[1]])
            if ringed:  # one legend line per panel, however many series were measured on a busy machine
                ax.annotate("hollow ring: busy machine", xy=(0.01, 0.99), xycoords="axes fraction", ha="left",
                            va="top", fontsize=7, color="0.35")
            values = data.loc[data["status"] == "ok", "value"] * scale
            _length_axis(ax, lengths)
            if len(values) and values.min() > 0 and values.max() / values.min() > 30:
                ax.set_yscale("log")
                ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _pos: f"{value:g}"))
                ax.yaxis.set_minor_formatter(FuncFormatter(lambda value, _pos: ""))
            else:
                ax.set_ylim(bottom=0)
            ax.set_title(titles[name])
            ax.set_ylabel(ylabel)
        handles, labels = axes[0].get_legend_handles_labels()
        figure.legend(handles, labels, loc="outside lower center", ncols=min(max(len(labels), 1), 3), frameon=False)
        figure.suptitle(suptitle)
    return figure


def _min_max(points: pd.DataFrame, scale: float) -> tuple[pd.Series, pd.Series] | None:
    """The lowest and highest repeat of each point (``details.min/max``), or None when not recorded."""
    if "details" not in points or points.empty:
        return None
    lows = points["details"].map(lambda d: d.get("min") if isinstance(d, dict) else None)
    highs = points["details"].map(lambda d: d.get("max") if isinstance(d, dict) else None)
    if lows.isna().any() or highs.isna().any():
        return None
    return lows.astype(float).to_numpy() * scale, highs.astype(float).to_numpy() * scale


def _mark_noisy(ax, ok: pd.DataFrame, scale: float, color: str) -> bool:
    """A hollow ring around each point measured on a busy machine (see the efficiency table's note); any?"""
    noisy = ok[[is_noisy(record) for record in ok.to_dict("records")]]
    if not noisy.empty:
        ax.scatter(noisy["context_length"].astype(float), noisy["value"] * scale, s=140, facecolors="none",
                   edgecolors=color, linewidths=1.5, zorder=5, label="_nolegend_")
    return not noisy.empty


def _mark_failures(ax, failed: pd.DataFrame, color: str) -> None:
    """An 'x' on the length axis with the status (OOM, TIMEOUT) where a measurement failed."""
    transform = ax.get_xaxis_transform()  # x in data units, y in axis fraction
    for length, status in zip(failed["context_length"].astype(float), failed["status"], strict=True):
        ax.plot([length], [0.03], marker="x", color=color, markersize=9, markeredgewidth=2.2, linestyle="none",
                transform=transform, clip_on=False)
        ax.text(length, 0.07, status.upper(), transform=transform, color=color, ha="center", va="bottom",
                fontsize=8, fontweight="bold")


def _length_axis(ax, lengths: list[int]) -> None:
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_locator(FixedLocator(lengths))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _pos: format_length(x)))
    if lengths:
        ax.set_xlim(lengths[0] / 1.3, lengths[-1] * 1.3)
    ax.set_xlabel("context length (tokens, log scale)")


def format_length(tokens: float) -> str:
    tokens = int(round(tokens))
    if tokens >= 1024 and tokens % 1024 == 0:
        return f"{tokens // 1024}K"
    return str(tokens)


# ---------------------------------------------------------------------------------------------- long context


def heatmap_figure(frame: pd.DataFrame, task: str) -> Figure | None:
    """Exact match by context length (x) and insertion depth (y), one panel per model and variant."""
    points = frame[(frame["task"] == task) & frame["context_length"].notna() & frame["depth"].notna()]
    if points.empty:
        return None
    keys = row_keys(frame)
    lengths = sorted(int(n) for n in points["context_length"].unique())
    depths = sorted(float(d) for d in points["depth"].unique())
    groups = ordered_groups(points, keys)
    columns = min(len(groups), 3)
    rows = -(-len(groups) // columns)
    with matplotlib.rc_context(STYLE):
        figure = Figure(figsize=(0.75 * len(lengths) * columns + 2.2, (0.45 * len(depths) + 1.4) * rows + 0.6),
                        layout="constrained")
        axes = figure.subplots(rows, columns, squeeze=False)
        image = None
        for ax, (row, group) in zip(axes.flat, groups, strict=False):
            grid = np.full((len(depths), len(lengths)), np.nan)
            statuses: dict[tuple[int, int], str] = {}
            for record in group.to_dict("records"):
                i, j = depths.index(float(record["depth"])), lengths.index(int(record["context_length"]))
                if record["status"] == "ok":
                    grid[i, j] = 100 * record["value"]
                else:
                    statuses[(i, j)] = record["status"]
            image = ax.imshow(np.ma.masked_invalid(grid), cmap="viridis", vmin=0, vmax=100, aspect="auto",
                              origin="upper")
            ax.set_facecolor("#d9d9d9")
            for (i, j), value in np.ndenumerate(grid):
                if not np.isnan(value):
                    ax.text(j, i, f"{value:.0f}", ha="center", va="center", fontsize=8,
                            color="black" if value > 60 else "white")
                elif (i, j) in statuses:
                    ax.text(j, i, statuses[(i, j)], ha="center", va="center", fontsize=7, color="black")
            ax.set_xticks(range(len(lengths)), [format_length(n) for n in lengths])
            ax.set_yticks(range(len(depths)), [f"{100 * d:.0f}%" for d in depths])
            ax.grid(False)
            ax.set_xlabel("context length (tokens)")
            ax.set_ylabel("insertion depth")
            ax.set_title(series_label(row, keys), fontsize=10)
        for ax in list(axes.flat)[len(groups):]:
            ax.set_visible(False)
        figure.colorbar(image, ax=axes, label="exact match (%)", shrink=0.9)
        figure.suptitle(f"{points['task_label'].iloc[0]} retrieval: exact match by length and depth (grey = no result)")
    return figure


# ---------------------------------------------------------------------------------------------- training


def training_loss_figure(training: pd.DataFrame, style: SeriesStyle) -> Figure | None:
    """Stage 1 (attention-transfer MSE, log scale) and stage 2 (next-token loss) against optimizer step."""
    if training.empty:
        return None
    keys = ["model", "variant"]
    if training.groupby(keys)["run"].nunique().max() > 1:
        keys.append("run")
    stages = [s for s in ("stage1", "stage2") if s in set(training["stage"])] + sorted(
        set(training["stage"]) - {"stage1", "stage2"})
    titles = {"stage1": "Stage 1: attention transfer", "stage2": "Stage 2: alignment (LoRA)"}
    ylabels = {"stage1": "MSE to teacher attention output", "stage2": "next-token loss (nats)"}
    with matplotlib.rc_context(STYLE):
        figure = Figure(figsize=(5.4 * len(stages) + 0.5, 4.4), layout="constrained")
        axes = figure.subplots(1, len(stages), squeeze=False)[0]
        for ax, stage in zip(axes, stages, strict=True):
            for row, group in ordered_groups(training[training["stage"] == stage], keys):
                group = group.sort_values("step")
                line = style.line(*row)
                line["marker"] = None
                label = series_label(row, keys)
                if len(group) > 50:  # raw curve faint, a rolling mean on top so the trend survives printing
                    ax.plot(group["step"], group["loss"], color=line["color"], alpha=0.25, linewidth=1)
                    smooth = group["loss"].rolling(max(len(group) // 25, 2), min_periods=1, center=True).mean()
                    ax.plot(group["step"], smooth, label=f"{label} (rolling mean)", **line)
                else:
                    ax.plot(group["step"], group["loss"], label=label, **{**line, "marker": "."})
            if stage == "stage1" and (training.loc[training["stage"] == stage, "loss"] > 0).all():
                ax.set_yscale("log")
            ax.set_title(titles.get(stage, stage))
            ax.set_xlabel("optimizer step")
            ax.set_ylabel(ylabels.get(stage, "loss"))
        handles, labels = axes[0].get_legend_handles_labels()
        figure.legend(handles, labels, loc="outside lower center", ncols=min(max(len(labels), 1), 3), frameon=False)
        figure.suptitle("Linearization training loss")
    return figure
