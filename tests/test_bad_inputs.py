"""Bad input is refused before any work: exit 2, one line, no traceback, no run directory, no file changed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lizard_bench.cli import main
from tests.bad_inputs import CASES, expand, write_fixtures


@pytest.fixture(scope="module")
def places(tmp_path_factory) -> dict[str, str]:
    return write_fixtures(tmp_path_factory.mktemp("bad-inputs"))


def snapshot(*roots: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``roots`` with its size and modification time."""
    files = {}
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file():
                stat = path.stat()
                files[str(path)] = (stat.st_size, stat.st_mtime_ns)
    return files


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_input_is_one_line_exit_2_and_changes_nothing(case, places, tmp_path, monkeypatch, capsys):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    fixtures_root = Path(places["fixtures"]).parent
    before = snapshot(fixtures_root)
    try:
        status = main(expand(case.argv, places))
    except SystemExit as exit_:  # argparse's own errors
        status = exit_.code
    captured = capsys.readouterr()
    error_lines = [line for line in captured.err.splitlines() if line.strip()]
    assert status == 2, f"exit status {status}; stderr: {captured.err[-2000:]}"
    assert len(error_lines) == 1, f"expected one line on stderr, got: {captured.err[-2000:]}"
    assert "Traceback" not in captured.err
    assert case.message in error_lines[0].lower(), error_lines[0]
    assert list(work.iterdir()) == [], "a refused command creates nothing (no run directory)"
    assert snapshot(fixtures_root) == before, "a refused command changes no file"


def test_the_battery_is_large_and_names_are_unique():
    assert len(CASES) >= 40
    assert len({case.name for case in CASES}) == len(CASES)


def test_a_missing_corpus_is_refused_before_the_model_loads(places, tmp_path, monkeypatch, capsys):
    """With lizard in the suite, the run used to load the model and train before reading the corpus."""
    import lizard_bench.runner as runner

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(runner, "load_model", lambda *a, **k: pytest.fail("the model was loaded"))
    status = main(["run", "--model", places["tiny"], "--variant", "lizard", "--corpus", "nope.txt", "--device", "cpu"])
    assert status == 2 and "does not exist" in capsys.readouterr().err
    assert not os.listdir(tmp_path)
