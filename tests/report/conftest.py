"""Shared fixtures for the report tests: a FIXTURE run directory (synthetic numbers) and the CLI parser."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from lizard_bench.report.commands import add_subcommands
from tests.report.fixtures import write_fixture_run

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def fixture_run(tmp_path_factory) -> Path:
    """A complete FIXTURE run (three variants, every task kind, failures, training logs). Do not modify."""
    return write_fixture_run(tmp_path_factory.mktemp("fixture-results"))


@pytest.fixture(scope="session")
def fixture_reports(fixture_run, tmp_path_factory) -> dict[str, Path]:
    from lizard_bench.report import write_reports

    out = tmp_path_factory.mktemp("fixture-reports")
    return write_reports([fixture_run], out, note="Synthetic example data (test fixture): nothing here was measured.")


@pytest.fixture
def cli():
    """Run ``lizard-bench report|compare`` through the real argparse wiring; returns the exit status."""
    parser = argparse.ArgumentParser(prog="lizard-bench")
    add_subcommands(parser.add_subparsers(dest="command", required=True))

    def run(*argv: str) -> int:
        args = parser.parse_args([str(a) for a in argv])
        return args.handler(args)

    return run
