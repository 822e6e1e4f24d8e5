"""``lizard-bench report``: one command from run directories to tables, figures and the leaderboard."""

import html.parser

import pytest

from lizard_bench.report import write_reports
from lizard_bench.report.runs import ReportError
from tests.report.conftest import REPO


class Page(html.parser.HTMLParser):
    """Collects what the leaderboard tests look at: tables, cells, images and any external reference."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[str] = []
        self.table_classes: dict[str, str] = {}
        self.images: list[dict] = []
        self.cells: list[str] = []
        self.external: list[str] = []
        self._in_cell = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self.tables.append(attrs.get("id", ""))
            self.table_classes[attrs.get("id", "")] = attrs.get("class", "")
        if tag == "img":
            self.images.append(attrs)
        if tag in ("td", "th"):
            self._in_cell = True
            self.cells.append("")
        for name in ("src", "href"):
            value = attrs.get(name) or ""
            if value and not value.startswith(("data:", "#")):
                self.external.append(value)

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self._in_cell = False

    def handle_data(self, data):
        if self._in_cell:
            self.cells[-1] += data


def parse(text: str) -> Page:
    page = Page()
    page.feed(text)
    return page


def test_report_from_the_committed_default_run(cli, tmp_path, capsys):
    """Acceptance: a run directory written by ``python run_bench.py`` -> everything in one command."""
    out = tmp_path / "report"
    assert cli("report", REPO / "results" / "baseline", "--out", out) == 0
    printed = capsys.readouterr().out
    assert "leaderboard" in printed
    for name in ("main", "all_metrics"):
        for fmt in ("md", "csv", "tex"):
            assert (out / "tables" / f"{name}.{fmt}").is_file()
    assert (out / "figures" / "task_scores.png").is_file() and (out / "figures" / "task_scores.svg").is_file()
    assert "Corpus perplexity" in (out / "report.md").read_text()
    page = parse((out / "leaderboard.html").read_text())
    assert "table-main" in page.tables and page.images
    assert {"table-efficiency", "table-long-context"} <= set(page.tables)  # the default suite has both
    assert "smollm2-135m" in page.cells


def test_fixture_reports_cover_every_view(fixture_reports):
    names = set(fixture_reports)
    for table in ("main", "paper_vs_run", "efficiency", "long_context", "all_metrics"):
        assert {f"table:{table}:md", f"table:{table}:csv", f"table:{table}:tex"} <= names
    for figure in ("task_scores", "throughput", "memory", "heatmap_passkey", "heatmap_needle", "training_loss"):
        assert {f"figure:{figure}:png", f"figure:{figure}:svg"} <= names
    assert {"report", "leaderboard", "records"} <= names
    report = fixture_reports["report"].read_text()
    assert "## Paper vs this run" in report and "](figures/throughput.png)" in report


def test_leaderboard_is_self_contained_with_provenance(fixture_reports):
    text = fixture_reports["leaderboard"].read_text()
    page = parse(text)
    assert page.external == []  # nothing fetched: figures are data URIs, no CDN
    assert "<script src" not in text and "<link" not in text
    assert len(page.images) == 6 and all(img["src"].startswith("data:image/svg+xml;base64,") for img in page.images)
    assert {"table-main", "table-paper-vs-run", "table-efficiency", "table-runs"} <= set(page.tables)
    for column in ("commit", "versions", "device", "backend", "date"):
        assert column in page.cells
    assert "cpu (fixture)" in page.cells and "2026-01-02 03:04 UTC" in page.cells
    assert "Synthetic example data (test fixture)" in text


def test_report_errors(cli, tmp_path):
    with pytest.raises(ReportError, match="no such run directory"):
        cli("report", tmp_path / "missing", "--out", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ReportError, match="not a run directory"):
        write_reports([tmp_path / "empty"], tmp_path / "out")
    with pytest.raises(SystemExit):  # argparse: --out is required
        cli("report", tmp_path)
