"""The leaderboard: one self-contained HTML file with sortable tables, the figures and provenance.

It must open from a mail attachment, an artifact store or a static host with no network:
figures are embedded as SVG data URIs, styles and the small sorting script are inline, and
nothing is fetched. Every table row carries where its numbers came from (run, commit,
package versions, device, kernel backend, date), so a number read off the page can be traced.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import math
import numbers
from pathlib import Path

import pandas as pd

from lizard_bench.report.loading import PROVENANCE_COLUMNS, provenance_frame
from lizard_bench.report.ranking import ranking_table
from lizard_bench.report.runs import Run, smoke_runs_note
from lizard_bench.report.tables import Table

FIGURE_CAPTIONS = {
    "task_scores": "Scores per task and variant. Accuracy in percent (higher is better); perplexity on its own axis "
                   "(lower is better). Error bars: one standard error.",
    "throughput": "Prefill and decode throughput against context length (log scale). "
                  "A cross on the axis marks a length that ran out of memory or time.",
    "memory": "Memory against context length (log scale).",
    "heatmap_passkey": "Passkey retrieval: exact match by context length and insertion depth.",
    "heatmap_needle": "Needle in a haystack: exact match by context length and insertion depth.",
    "training_loss": "Linearization training loss: stage 1 attention transfer and stage 2 alignment.",
}

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2rem auto; max-width: 1400px;
       padding: 0 1rem; color: #1a1a1a; line-height: 1.45; }
h1 { margin-bottom: 0.2rem; } h2 { margin-top: 2.2rem; border-bottom: 1px solid #ddd; padding-bottom: 0.2rem; }
.meta { color: #555; margin-top: 0; }
.note { background: #fff4d6; border-left: 4px solid #e0a800; padding: 0.5rem 1rem; }
nav a { margin-right: 1rem; }
.table-wrap { overflow-x: auto; }
table { border-collapse: collapse; font-size: 0.88rem; margin: 0.6rem 0; }
th, td { border-bottom: 1px solid #e3e3e3; padding: 0.3rem 0.6rem; white-space: nowrap; }
th { white-space: normal; min-width: 4rem; max-width: 10rem; vertical-align: bottom; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.prov { color: #555; font-size: 0.8rem; } td.versions { white-space: normal; min-width: 16rem; }
td.status { color: #a40000; font-style: italic; background: #fdecec; }
th { background: #f4f4f4; text-align: left; position: sticky; top: 0; }
th button { all: unset; cursor: pointer; font-weight: 600; }
th button:focus-visible { outline: 2px solid #0072B2; }
th[aria-sort="ascending"] button::after { content: " ▲"; } th[aria-sort="descending"] button::after { content: " ▼"; }
tbody tr:hover { background: #f7fbff; }
.notes { color: #555; font-size: 0.85rem; }
figure { margin: 1.5rem 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
img[data-rendered="no"] { outline: 3px solid #a40000; }
figcaption { color: #444; font-size: 0.9rem; }
@media print { th { position: static; } nav { display: none; } }
"""

# Click a header to sort by it; again to reverse. Failed or missing cells stay at the bottom.
SCRIPT = """
(function () {
  "use strict";
  function sortKey(cell) {
    var raw = cell.getAttribute("data-sort");
    if (raw === null) { return { num: false, text: cell.textContent.trim().toLowerCase() }; }
    if (raw === "") { return null; }
    return { num: true, value: parseFloat(raw) };
  }
  function compareKeys(a, b, dir) {
    if (a === null || b === null) { return (a === null) - (b === null); }
    if (a.num && b.num) { return dir * (a.value - b.value); }
    return dir * String(a.num ? a.value : a.text).localeCompare(String(b.num ? b.value : b.text), undefined,
                                                                 { numeric: true });
  }
  function sortTable(table, index, dir) {
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var order = new Map(rows.map(function (row, i) { return [row, i]; }));
    rows.sort(function (r1, r2) {
      return compareKeys(sortKey(r1.cells[index]), sortKey(r2.cells[index]), dir) || order.get(r1) - order.get(r2);
    });
    rows.forEach(function (row) { body.appendChild(row); });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, i) {
      th.setAttribute("aria-sort", i === index ? (dir > 0 ? "ascending" : "descending") : "none");
    });
  }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, index) {
      var button = document.createElement("button");
      button.type = "button";
      button.textContent = th.textContent;
      button.title = "sort by " + th.textContent;
      th.textContent = "";
      th.appendChild(button);
      th.setAttribute("aria-sort", "none");
      button.addEventListener("click", function () {
        sortTable(table, index, th.getAttribute("aria-sort") === "ascending" ? -1 : 1);
      });
    });
    table.classList.add("sortable-ready");
  });
  function markImages() {
    document.querySelectorAll("figure img").forEach(function (img) {
      img.setAttribute("data-rendered", img.complete && img.naturalWidth > 0 ? "yes" : "no");
    });
  }
  if (document.readyState === "complete") { markImages(); } else { window.addEventListener("load", markImages); }
})();
"""


def write_leaderboard(
    out_path: Path,
    runs: list[Run],
    frame: pd.DataFrame,
    tables: list[Table],
    figures: dict[str, dict[str, Path]],
    note: str | None = None,
) -> Path:
    """Write the page to ``out_path``; ``figures`` maps a figure name to its written files (SVG is embedded)."""
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(render_leaderboard(runs, frame, tables, figures, note), encoding="utf-8")
    return out_path


def render_leaderboard(
    runs: list[Run],
    frame: pd.DataFrame,
    tables: list[Table],
    figures: dict[str, dict[str, Path]],
    note: str | None = None,
) -> str:
    generated = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    tables = _with_ranking(tables, frame)
    sections = [_table_section(table, frame) for table in tables]
    nav = [f'<a href="#{_anchor(t.name)}">{html.escape(t.title)}</a>' for t in tables]
    if figures:  # right after the headline table: the figures are what most readers come for
        position = 1 if tables else 0
        sections.insert(position, _figures_section(figures))
        nav.insert(position, '<a href="#figures">Figures</a>')
    sections.append(_runs_section(runs, frame))
    nav.append('<a href="#runs">Runs</a>')
    run_names = ", ".join(html.escape(run.run_id) for run in runs)
    note_html = f'<p class="note">{html.escape(note)}</p>' if note else ""
    smoke = smoke_runs_note(runs)
    if smoke:
        note_html = f'<p class="note smoke"><strong>{html.escape(smoke)}</strong></p>' + note_html
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>lizard-bench leaderboard</title>
<style>{STYLE}</style>
</head>
<body>
<header>
<h1>lizard-bench leaderboard{' (smoke run)' if smoke else ''}</h1>
<p class="meta">Generated {generated} from {len(runs)} run(s): {run_names}. Click a column header to sort.</p>
{note_html}
<nav>{" ".join(nav)}</nav>
</header>
<main>
{"".join(sections)}
</main>
<script>{SCRIPT}</script>
</body>
</html>
"""


def _with_ranking(tables: list[Table], frame: pd.DataFrame) -> list[Table]:
    """``tables`` with the ranking right after the main table: a sorted column alone would rank noise."""
    ranking = ranking_table(frame)
    if ranking is None:
        return tables
    position = next((i + 1 for i, table in enumerate(tables) if table.name == "main"), 0)
    return [*tables[:position], ranking, *tables[position:]]


def _table_section(table: Table, frame: pd.DataFrame) -> str:
    raw, display = table.raw.copy(), table.display.copy()
    provenance_keys = [k for k in ("model", "variant", "run") if k in table.keys]
    with_provenance = {"model", "variant"} <= set(provenance_keys)
    if with_provenance:
        provenance = provenance_frame(frame, provenance_keys)
        extra = [c for c in ("run", *PROVENANCE_COLUMNS) if c not in table.keys]
        merged = display[provenance_keys].merge(provenance[[*provenance_keys, *extra]], on=provenance_keys,
                                                how="left")
        for column in extra:
            display[column] = merged[column].fillna("unknown").to_numpy()
    header = "".join(f'<th scope="col">{html.escape(str(c))}</th>' for c in display.columns)
    body = []
    for i in range(len(display)):
        cells = []
        for column in display.columns:
            text = str(display.iloc[i][column])
            value = raw.iloc[i][column] if column in raw.columns else None
            cells.append(_cell(column, text, value, table.keys))
        body.append("<tr>" + "".join(cells) + "</tr>")
    notes = "".join(f"<p class=\"notes\">{html.escape(n)}</p>" for n in table.notes)
    anchor = _anchor(table.name)
    return (f'<section id="{anchor}"><h2>{html.escape(table.title)}</h2><div class="table-wrap">'
            f'<table class="sortable" id="table-{anchor}"><thead><tr>{header}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>{notes}</section>\n')


def _cell(column: str, text: str, value, keys: list[str]) -> str:
    """A ``<td>``; numeric cells carry ``data-sort`` (empty for failed or missing ones, which sort last)."""
    escaped = html.escape(text)
    if column in PROVENANCE_COLUMNS:
        css = "prov versions" if column == "versions" else "prov"
        if column == "commit" and len(text) > 12:
            return f'<td class="{css}" title="{escaped}">{html.escape(text[:10])}…</td>'
        return f'<td class="{css}">{escaped}</td>'
    if column in keys or column == "run":
        return f"<td>{escaped}</td>"
    if _is_number(value):
        return f'<td class="num" data-sort="{float(value)!r}">{escaped}</td>'
    if isinstance(value, str) and value:  # a status word: measured and failed
        return f'<td class="num status" data-sort="" title="status: {escaped}">{escaped}</td>'
    return f'<td class="num" data-sort="">{escaped}</td>'


def _figures_section(figures: dict[str, dict[str, Path]]) -> str:
    parts = ['<section id="figures"><h2>Figures</h2>']
    for name, paths in figures.items():
        svg = paths["svg"].read_bytes()
        data = base64.b64encode(svg).decode("ascii")
        caption = FIGURE_CAPTIONS.get(name, name.replace("_", " "))
        parts.append(f'<figure id="figure-{_anchor(name)}"><img alt="{html.escape(caption)}" '
                     f'src="data:image/svg+xml;base64,{data}"><figcaption>{html.escape(caption)}</figcaption>'
                     f"</figure>")
    parts.append("</section>\n")
    return "".join(parts)


def _runs_section(runs: list[Run], frame: pd.DataFrame) -> str:
    rows = []
    for run in runs:
        records = frame[frame["run"] == run.run_id]
        provenance = run.manifest.get("provenance", {})
        statuses = records["status"].value_counts().to_dict()
        counts = ", ".join(f"{count} {status}" for status, count in sorted(statuses.items()))
        cells = [run.run_id, run.path.name, str(run.manifest.get("started", "unknown")),
                 str(run.manifest.get("config_hash", "unknown")), str(provenance.get("git_commit", "unknown")),
                 str(provenance.get("device_name", provenance.get("device", "unknown"))),
                 str(provenance.get("kernel_backend", "unknown")), counts]
        rows.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    header = "".join(f'<th scope="col">{h}</th>' for h in (
        "run", "directory", "started", "config hash", "commit", "device", "backend", "records"))
    return (f'<section id="runs"><h2>Runs</h2><div class="table-wrap"><table class="sortable" id="table-runs">'
            f'<thead><tr>{header}</tr></thead><tbody>{"".join(rows)}</tbody></table></div></section>\n')


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _anchor(name: str) -> str:
    return name.replace("_", "-")
