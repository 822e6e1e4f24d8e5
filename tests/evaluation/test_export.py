"""``export-data`` writing logic, with a stand-in for the hub loader (the hub itself is not reachable here)."""

from __future__ import annotations

import argparse
import json

import pytest

from lizard_bench.config import SuiteConfig
from lizard_bench.evaluation import export
from lizard_bench.evaluation.catalog import get_spec
from lizard_bench.evaluation.commands import add_subcommands
from lizard_bench.evaluation.data_sources import plan_data
from lizard_bench.evaluation.export import ExportError, export_task
from lizard_bench.tasks import get_task
from tests.evaluation.conftest import FIXTURE_DATA


class FakeHub:
    """Serves the fixture rows as if they were the hub's splits, and remembers what was asked."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str | None, str]] = []

    def __call__(self, path: str, name: str | None, split: str):
        self.calls.append((path, name, split))
        task = {("cais/mmlu", "all"): "mmlu", ("nyu-mll/glue", "cola"): "cola",
                ("aps/super_glue", "record"): "record"}[(path, name)]
        import datasets  # a real Dataset, as datasets.load_dataset returns

        rows = [json.loads(line) for line in (FIXTURE_DATA / task / f"{split}.jsonl").open() if line.strip()]
        return datasets.Dataset.from_list(rows)


def read_rows(path):
    return [json.loads(line) for line in path.open()]


def test_export_writes_the_layout_data_dir_expects(tmp_path):
    hub = FakeHub()
    for name in ("cola", "mmlu", "record"):
        export_task(get_spec(name), tmp_path, loader=hub)
    assert hub.calls == [("nyu-mll/glue", "cola", "validation"), ("cais/mmlu", "all", "test"),
                         ("cais/mmlu", "all", "dev"), ("aps/super_glue", "record", "validation")]
    assert read_rows(tmp_path / "cola" / "validation.jsonl") == read_rows(FIXTURE_DATA / "cola" / "validation.jsonl")
    manifest = json.loads((tmp_path / "mmlu" / "export.json").read_text())
    assert manifest["dataset_path"] == "cais/mmlu" and manifest["splits"] == {"test": 5, "dev": 10}
    # what was written is what a run looks for
    for name in ("cola", "mmlu", "record"):
        assert get_task(name).data_status(SuiteConfig(data_dir=str(tmp_path))) is None
    plan = plan_data(get_spec("mmlu"), str(tmp_path), 5)
    assert plan.kind == "local" and plan.details()["data_export"]["splits"]["dev"] == 10
    assert not list(tmp_path.rglob("*.partial"))


def test_fewshot_splits_are_exported_on_request(tmp_path):
    hub = FakeHub()
    exported = export_task(get_spec("cola"), tmp_path, with_fewshot=True, loader=hub)
    assert exported.rows == {"validation": 4, "train": 2}


def test_a_failing_download_is_one_line_and_leaves_no_partial_file(tmp_path):
    def broken(path, name, split):
        yield {"sentence": "first row", "label": 1, "idx": 0}
        raise ConnectionError("hub went away\nlong traceback text")

    with pytest.raises(ExportError) as failure:
        export_task(get_spec("sst2"), tmp_path, loader=broken)
    message = str(failure.value)
    assert message.startswith("sst2: could not export nyu-mll/glue:sst2 split validation: hub went away")
    assert "\n" not in message and "HF_DATASETS_OFFLINE" in message  # the tests run offline
    assert list((tmp_path / "sst2").iterdir()) == []


def test_the_command_exports_suites_and_rejects_unknown_tasks(tmp_path, monkeypatch, capsys):
    hub = FakeHub()
    monkeypatch.setattr(export, "load_split", hub)
    parser = argparse.ArgumentParser(prog="lizard-bench")
    add_subcommands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["export-data", "--out", str(tmp_path / "data"), "--tasks", "cola,mmlu"])
    assert args.handler(args) == 0
    assert (tmp_path / "data" / "mmlu" / "dev.jsonl").is_file()
    assert "--data-dir" in capsys.readouterr().out
    bad = parser.parse_args(["export-data", "--out", str(tmp_path), "--tasks", "glue,nope"])
    with pytest.raises(ExportError, match="unknown lm-eval task 'nope'"):
        bad.handler(bad)
