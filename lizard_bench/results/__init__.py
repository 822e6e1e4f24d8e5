"""Result records: a versioned schema and an atomic, resumable store under ``results/<run-id>/``."""

from lizard_bench.results.schema import SCHEMA_VERSION, Record, RecordError
from lizard_bench.results.store import RunStore, atomic_write_text

__all__ = ["SCHEMA_VERSION", "Record", "RecordError", "RunStore", "atomic_write_text"]
