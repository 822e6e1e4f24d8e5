"""The result record: one number for one (model, variant, task, metric), with its provenance.

Records are the only thing reports and regression checks read, so each one carries enough
to be trusted on its own: which code, library versions, device and kernel backend produced
it, with which seed and config. The schema is versioned and validated on read, so a
truncated or hand-edited file is rejected loudly instead of becoming a wrong table.

Records also carry what their task declares about the value, so a report can show a task it
has never heard of: the task's label, the metric's direction, and whether the metric is the
task's headline (see :class:`Record`). Version 1 records lack the label and headline; they still
load, and the report takes both from the registered task instead.

Every score carries how sure it is (version 3): ``n``, the items it averages (prompts, windows;
an efficiency point's repeats), and its 95 % interval ``ci_low``/``ci_high`` by the method in
``details.interval`` (:mod:`lizard_bench.results.intervals`). Older records kept a probe's
interval in ``details``; readers fall back to it there.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from lizard_bench.errors import InputError

SCHEMA_VERSION = 3
READABLE_VERSIONS = (1, 2, 3)  # 2 added task_label and headline; 3 n, ci_low and ci_high
STATUSES = ("ok", "unavailable", "error", "oom", "timeout")
DIRECTIONS = ("higher", "lower")


class RecordError(InputError, ValueError):
    """A record that does not match the schema; the message names the field."""


@dataclass
class Record:
    """One measured value. ``value`` is None unless ``status`` is 'ok'; ``reason`` says why.

    What the task declares about the value, copied into each record by the runner:

    - ``task_label``: the task's name for tables and figures (``Task.label``).
    - ``direction``: 'higher' or 'lower' is better, the task's ``metrics[base metric]``.
    - ``headline``: whether the metric (the part before any '@') is the one a one-column view
      shows for the task (``Task.headline_metric``: its ``paper_metric``, else its first metric).

    ``task_label`` and ``headline`` are None in records written before schema version 2 (and in
    hand-made ones); readers then ask the task registry.

    ``n`` and ``ci_low``/``ci_high`` (version 3): how many items the value rests on and its 95 %
    interval; None where the value has none (a single item, an efficiency point's spread).
    """

    model: str
    variant: str
    task: str
    metric: str
    value: float | None
    status: str = "ok"
    stderr: float | None = None
    n: int | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    direction: str = "higher"
    task_label: str | None = None
    headline: bool | None = None
    reason: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.model, self.variant, self.task, self.metric)

    @property
    def interval(self) -> tuple[float, float] | None:
        """The 95 % interval: ``ci_low``/``ci_high``, or for a record from before version 3 the one a probe
        kept in ``details``; None where the record has none."""
        if self.ci_low is not None and self.ci_high is not None:
            return float(self.ci_low), float(self.ci_high)
        low, high = self.details.get("ci_low"), self.details.get("ci_high")
        if all(_is_finite_number(bound) for bound in (low, high)):
            return float(low), float(high)
        return None

    def to_json(self) -> str:
        self.validate()
        return json.dumps(asdict(self), indent=2, sort_keys=True, allow_nan=False)

    @classmethod
    def from_json(cls, text: str, source: str = "<record>") -> Record:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise RecordError(f"{source}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
        return cls.from_dict(data, source)

    @classmethod
    def from_dict(cls, data: Any, source: str = "<record>") -> Record:
        if not isinstance(data, dict):
            raise RecordError(f"{source}: a record must be a JSON object")
        version = data.get("schema_version")
        if version not in READABLE_VERSIONS or isinstance(version, bool):
            raise RecordError(f"{source}: schema_version {version!r} is not supported (expected one of "
                              f"{', '.join(map(str, READABLE_VERSIONS))})")
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise RecordError(f"{source}: unknown field(s) {', '.join(unknown)}")
        missing = sorted(n for n in ("model", "variant", "task", "metric", "value") if n not in data)
        if missing:
            raise RecordError(f"{source}: missing field(s) {', '.join(missing)}")
        record = cls(**data)
        record.validate(source)
        return record

    def validate(self, source: str = "<record>") -> None:
        for name in ("model", "variant", "task", "metric"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise RecordError(f"{source}: '{name}' must be a non-empty string, got {value!r}")
        if self.status not in STATUSES:
            raise RecordError(f"{source}: 'status' must be one of {', '.join(STATUSES)}, got {self.status!r}")
        if self.direction not in DIRECTIONS:
            raise RecordError(f"{source}: 'direction' must be higher or lower, got {self.direction!r}")
        if self.task_label is not None and (not isinstance(self.task_label, str) or not self.task_label):
            raise RecordError(f"{source}: 'task_label' must be a non-empty string or null, got {self.task_label!r}")
        if self.headline is not None and not isinstance(self.headline, bool):
            raise RecordError(f"{source}: 'headline' must be true, false or null, got {self.headline!r}")
        if self.status == "ok":
            if not _is_finite_number(self.value):
                raise RecordError(f"{source}: an 'ok' record needs a finite numeric 'value', got {self.value!r}")
        else:
            if self.value is not None:
                raise RecordError(f"{source}: a '{self.status}' record must have value null")
            if not self.reason:
                raise RecordError(f"{source}: a '{self.status}' record must say why in 'reason'")
        if self.stderr is not None and not (_is_finite_number(self.stderr) and self.stderr >= 0):
            raise RecordError(f"{source}: 'stderr' must be a non-negative number or null, got {self.stderr!r}")
        if self.n is not None and (not isinstance(self.n, int) or isinstance(self.n, bool) or self.n < 1):
            raise RecordError(f"{source}: 'n' must be a positive integer or null, got {self.n!r}")
        if (self.ci_low is None) != (self.ci_high is None):
            raise RecordError(f"{source}: 'ci_low' and 'ci_high' must both be numbers or both null")
        if self.ci_low is not None and not (_is_finite_number(self.ci_low) and _is_finite_number(self.ci_high)
                                            and self.ci_low <= self.ci_high):
            raise RecordError(f"{source}: 'ci_low' and 'ci_high' must be finite numbers with ci_low <= ci_high, "
                              f"got {self.ci_low!r}, {self.ci_high!r}")
        if not isinstance(self.details, dict) or not isinstance(self.provenance, dict):
            raise RecordError(f"{source}: 'details' and 'provenance' must be objects")


def _is_finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
