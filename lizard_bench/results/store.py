"""The run directory: atomic record files, a manifest, and the finished-unit index for resuming.

Layout of ``results/<run-id>/``::

    manifest.json                      the suite config and run provenance
    records/<model>/<variant>/<task>.json   all metrics of one finished unit, written at once

A unit's file appears only when the unit has finished (written to a temporary file and
renamed into place), so a crash leaves either the whole unit or nothing, and a restarted
run skips exactly the units whose files exist.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from lizard_bench.errors import InputError
from lizard_bench.results.schema import Record, RecordError

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so readers see the old file or the complete new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, 0o666 & ~_current_umask())  # mkstemp makes 0600; results are meant to be shared
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


class OutputFolderError(InputError):
    """A folder results or reports are to be written to that is a file, or cannot be written."""


def check_writable_folder(path: Path, label: str) -> None:
    """``path`` is a writable folder, or one that can be created: checked before any work is done."""
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise OutputFolderError(f"{label} {path} is a file, not a folder: pass a folder")
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise OutputFolderError(f"{label} {path}: {existing} is a file, so the folder cannot be created")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputFolderError(f"{label} {path}: {existing} is not writable; pass a folder you can write to")


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def safe_name(name: str) -> str:
    """A path component for a model/variant/task name (hub ids contain '/')."""
    return _UNSAFE.sub("_", name).strip("._") or "_"


class RunStore:
    """Reads and writes the records of one run directory."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)

    @property
    def manifest_path(self) -> Path:
        return self.run_dir / "manifest.json"

    def unit_path(self, model: str, variant: str, task: str) -> Path:
        return self.run_dir / "records" / safe_name(model) / safe_name(variant) / f"{safe_name(task)}.json"

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        atomic_write_text(self.manifest_path, json.dumps(manifest, indent=2, sort_keys=True) + "\n")

    def read_manifest(self) -> dict[str, Any] | None:
        """The run's manifest, or None when there is none; a file that is not one is a RecordError.

        Why the shape is checked: a resumed run compares ``config_hash``, and valid JSON of another
        shape would otherwise read as "started with a different config", sending the user the wrong way.
        """
        if not self.manifest_path.is_file():
            return None
        try:
            manifest = json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise RecordError(f"{self.manifest_path}: not valid JSON ({exc.msg} at line {exc.lineno}): restore it, "
                              "or start a new run with another --run-id") from None
        except UnicodeDecodeError:
            raise RecordError(f"{self.manifest_path}: not UTF-8 text: restore it, or start a new run with another "
                              "--run-id") from None
        if not isinstance(manifest, dict) or not isinstance(manifest.get("config_hash"), str):
            found = f"keys {', '.join(map(str, manifest))}" if isinstance(manifest, dict) else type(manifest).__name__
            raise RecordError(f"{self.manifest_path} is not a lizard-bench manifest (an object with run_id, config "
                              f"and config_hash; found {found[:80]}): restore it, or start a new run with another "
                              "--run-id")
        return manifest

    def has_records(self) -> bool:
        """Whether any unit has finished (or failed) in this run: a manifest alone holds nothing to lose."""
        return any((self.run_dir / "records").rglob("*.json"))

    def remove_partial_files(self) -> None:
        """Delete temporary files a killed write left behind (``.name.XXXX.tmp``; see :func:`atomic_write_text`)."""
        if self.run_dir.is_dir():
            for leftover in self.run_dir.rglob(".*.tmp"):
                leftover.unlink(missing_ok=True)

    def write_unit(self, model: str, variant: str, task: str, records: list[Record]) -> Path:
        """Write every record of a finished unit as one JSON list, atomically."""
        if not records:
            raise RecordError(f"unit ({model}, {variant}, {task}) produced no records")
        body = "[\n" + ",\n".join(r.to_json() for r in records) + "\n]\n"
        path = self.unit_path(model, variant, task)
        atomic_write_text(path, body)
        return path

    def unit_done(self, model: str, variant: str, task: str) -> bool:
        """A unit is done when its file exists and it did not fail; failed units are retried on resume."""
        path = self.unit_path(model, variant, task)
        return path.is_file() and all(r.status != "error" for r in read_unit_file(path))

    def read_records(self) -> list[Record]:
        """Every record in the run, validated; a corrupt file raises :class:`RecordError` naming it."""
        records: list[Record] = []
        for path in sorted((self.run_dir / "records").rglob("*.json")):
            records.extend(read_unit_file(path))
        return records


def read_unit_file(path: Path) -> list[Record]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise RecordError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, list):
        raise RecordError(f"{path}: a unit file must hold a JSON list of records")
    return [Record.from_dict(item, f"{path}[{i}]") for i, item in enumerate(data)]
