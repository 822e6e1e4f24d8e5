"""Result records: schema round trip, rejection of corrupt records, atomic writes, resumable units."""

import json
import os

import pytest

from lizard_bench.results import Record, RecordError, RunStore, atomic_write_text
from lizard_bench.results import store as store_module


def make_record(**changes) -> Record:
    fields = dict(model="m", variant="softmax", task="t", metric="acc", value=0.5, stderr=0.01, task_label="T",
                  headline=True,
                  provenance={"git_commit": "abc", "seed": 0}, details={"n": 10})
    fields.update(changes)
    return Record(**fields)


def test_round_trip_preserves_every_field():
    record = make_record()
    assert Record.from_json(record.to_json()) == record


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.pop("metric"), "missing field"),
        (lambda d: d.update(schema_version=99), "schema_version 99"),
        (lambda d: d.update(value="high"), "finite numeric 'value'"),
        (lambda d: d.update(status="great"), "'status' must be one of"),
        (lambda d: d.update(extra=1), "unknown field"),
        (lambda d: d.update(stderr=-1.0), "'stderr' must be"),
        (lambda d: d.update(status="unavailable"), "must have value null"),
        (lambda d: d.update(status="unavailable", value=None), "must say why"),
        (lambda d: d.update(model=""), "'model' must be a non-empty string"),
        (lambda d: d.update(task_label=""), "'task_label' must be a non-empty string or null"),
        (lambda d: d.update(headline="yes"), "'headline' must be true, false or null"),
    ],
)
def test_corrupt_records_are_rejected(mutate, message):
    data = json.loads(make_record().to_json())
    mutate(data)
    with pytest.raises(RecordError, match=message):
        Record.from_dict(data)


def test_version_1_records_without_label_and_headline_still_load():
    data = json.loads(make_record().to_json())
    del data["task_label"], data["headline"]
    data["schema_version"] = 1
    record = Record.from_dict(data)
    assert (record.task_label, record.headline, record.schema_version) == (None, None, 1)


def test_non_finite_values_cannot_be_written():
    with pytest.raises(RecordError):
        make_record(value=float("nan")).to_json()


def test_truncated_unit_file_is_rejected_with_its_path(tmp_path):
    store = RunStore(tmp_path / "run")
    path = store.write_unit("m", "softmax", "t", [make_record()])
    path.write_text(path.read_text()[:40])
    with pytest.raises(RecordError, match=str(path.name)):
        store.read_records()


def test_unit_round_trip_and_resume_state(tmp_path):
    store = RunStore(tmp_path / "run")
    assert not store.unit_done("org/model", "softmax", "t")
    records = [make_record(model="org/model"), make_record(model="org/model", metric="f1", value=0.25)]
    store.write_unit("org/model", "softmax", "t", records)
    assert store.unit_done("org/model", "softmax", "t")
    assert store.read_records() == records


def test_failed_units_are_not_done(tmp_path):
    store = RunStore(tmp_path / "run")
    store.write_unit("m", "softmax", "t", [make_record(status="error", value=None, stderr=None, reason="boom")])
    assert not store.unit_done("m", "softmax", "t")


def test_atomic_write_leaves_old_content_when_writing_fails(tmp_path, monkeypatch):
    target = tmp_path / "record.json"
    atomic_write_text(target, "old")

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(store_module.os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_text(target, "new content")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["record.json"], "the temporary file must be cleaned up"


def test_empty_unit_is_an_error(tmp_path):
    with pytest.raises(RecordError, match="no records"):
        RunStore(tmp_path).write_unit("m", "v", "t", [])


def test_atomic_writes_are_readable_by_others(tmp_path):
    target = tmp_path / "shared.json"
    previous = os.umask(0o022)
    try:
        atomic_write_text(target, "{}")
    finally:
        os.umask(previous)
    assert target.stat().st_mode & 0o777 == 0o644
