"""The leaderboard rendered for real in headless Chromium: tables, sorting script, images, a screenshot.

Needs the Debian package ``chromium`` (``.ci/run`` installs it). Without it the test is skipped
on a developer machine, but fails in CI (``CI=true``), where a skipped browser test would hide
a broken page.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

from tests.report.conftest import REPO
from tests.report.test_report_command import parse

ARTIFACTS = REPO / "test-artifacts"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars", "--virtual-time-budget=10000")


@pytest.fixture(scope="module")
def chromium() -> str:
    found = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
    if found:
        return found
    if os.environ.get("CI") == "true":
        pytest.fail("chromium is not installed; CI must install it (.ci/run: apt-get install -y chromium)")
    pytest.skip("chromium is not installed (Debian: apt-get install -y chromium); the leaderboard browser test "
                "runs in CI")


def run_chromium(chromium: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    command = [chromium, *FLAGS, f"--user-data-dir={profile}", *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, f"chromium failed ({result.returncode}): {result.stderr[-2000:]}"
    return result


def dump_dom(chromium: str, tmp_path: Path, page: Path) -> str:
    return run_chromium(chromium, tmp_path, "--dump-dom", page.as_uri()).stdout


def test_rendered_page_has_tables_sorting_and_images(chromium, fixture_reports, tmp_path):
    dom = dump_dom(chromium, tmp_path, fixture_reports["leaderboard"])
    page = parse(dom)
    assert {"table-main", "table-paper-vs-run", "table-efficiency", "table-long-context", "table-all-metrics",
            "table-runs"} <= set(page.tables)
    assert all("sortable-ready" in css for css in page.table_classes.values())  # the inline script ran
    assert 'aria-sort="none"' in dom and '<button type="button"' in dom
    figures = [img for img in page.images if img.get("alt")]
    assert len(figures) == 6
    assert all(img.get("data-rendered") == "yes" for img in figures), [img.get("alt") for img in figures]
    assert "unsloth/Llama-3.2-1B" in page.cells and "error" in page.cells


@pytest.mark.parametrize(("column", "clicks", "expected"), [
    ("PIQA acc (%)", 1, ["softmax", "lolcats", "lizard"]),
    ("MMLU acc (%)", 1, ["lizard", "softmax", "lolcats"]),  # the failed cell sorts last ...
    ("MMLU acc (%)", 2, ["softmax", "lizard", "lolcats"]),  # ... in both directions
    ("variant", 2, ["softmax", "lolcats", "lizard"]),
])
def test_clicking_a_header_sorts_the_table(chromium, fixture_reports, tmp_path, column, clicks, expected):
    source = fixture_reports["leaderboard"].read_text(encoding="utf-8")
    click = f"""<script>
      var header = Array.from(document.querySelectorAll("#table-main thead button"))
        .find(function (b) {{ return b.textContent === {column!r}; }});
      for (var i = 0; i < {clicks}; i++) {{ header.click(); }}
    </script></body>"""
    page = tmp_path / "clicked.html"
    page.write_text(source.replace("</body>", click), encoding="utf-8")
    dom = dump_dom(chromium, tmp_path, page)
    main = dom[dom.index('id="table-main"'):]
    main = main[:main.index("</table>")]
    rows = [row.split("</td><td>")[1].split("<")[0] for row in main.split("<tr>")[2:]]
    assert rows == expected
    assert ('aria-sort="ascending"' if clicks == 1 else 'aria-sort="descending"') in main


def test_screenshot(chromium, fixture_reports, tmp_path):
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "leaderboard.png"
    shot.unlink(missing_ok=True)
    run_chromium(chromium, tmp_path, f"--screenshot={shot}", "--window-size=1280,2000",
                 fixture_reports["leaderboard"].as_uri())
    image = matplotlib.image.imread(shot)
    assert image.shape[:2] == (2000, 1280)
    assert np.std(image[..., :3]) > 0.05  # not a blank page
