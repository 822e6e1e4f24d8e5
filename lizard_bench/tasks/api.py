"""What a task is: a name and label, a suite, metrics with a direction, a data source, and a ``run``.

A task receives a :class:`ModelHandle` (the model as one variant sees it) and a
:class:`TaskContext` (seed, limit, budgets, corpus access) and returns metric values; the
runner turns them into records with provenance and with what the task declares about each
value (its label, the metric's direction, whether it is the headline metric), which is all a
report needs to show a new task. A task whose data cannot be had raises
:class:`TaskUnavailable`, which becomes an 'unavailable' record with the reason rather than a
crash or a silent gap in a table.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from lizard_bench.config import SuiteConfig
from lizard_bench.data.corpus import Corpus
from lizard_bench.errors import ConfigError
from lizard_bench.typed_config import build

if TYPE_CHECKING:  # annotations only: `lizard-bench list tasks` should not wait for torch and transformers
    import torch

    from lizard_bench.models.loading import LoadedModel


class TaskUnavailable(RuntimeError):
    """The task's data (or a resource it needs) is not available here; the message says why."""


class OptionError(ConfigError):
    """A task option that is unknown or has a wrong value; the message names the option and what it needs."""


@dataclass(frozen=True)
class NoOptions:
    """The options of a task that takes none."""


@dataclass
class MetricValue:
    """One measured number. Metric names may carry a point after '@' (``tokens_per_s@2048``);
    the part before it must be a key of the task's ``metrics``, which gives its direction.
    A point that could not be measured has ``status`` 'oom', 'timeout' or 'unavailable',
    ``value`` None and a ``reason``: it is recorded, not dropped.

    ``n`` is how many items the value rests on; ``interval`` its 95 % interval with the method's
    name in ``details['interval']`` (a value with a stderr and no interval gets value ± 1.96·stderr)."""

    metric: str
    value: float | None
    stderr: float | None = None
    details: dict[str, Any] = field(default_factory=dict)
    status: str = "ok"
    reason: str | None = None
    n: int | None = None
    interval: tuple[float, float] | None = None


@dataclass
class ModelHandle:
    """One (model, variant) pair ready to evaluate."""

    model_name: str
    variant: str
    loaded: LoadedModel
    kernel_backend: str
    variant_summary: dict[str, Any] = field(default_factory=dict)  # checkpoint and method, for provenance
    # (function, args, kwargs) that rebuild this handle in another process, for probes that need a fresh one
    rebuild: tuple[Callable[..., ModelHandle], tuple, dict[str, Any]] | None = None
    # post-prefill states one probe leaves for a later one on this handle (tasks/efficiency.py): the decode
    # probe then does not re-run a prefill the prefill probe has just measured
    prefilled: dict[tuple, Any] = field(default_factory=dict)

    @property
    def model(self) -> torch.nn.Module:
        return self.loaded.model

    @property
    def tokenizer(self):
        return self.loaded.tokenizer

    @property
    def device(self) -> torch.device:
        return self.loaded.device


@dataclass
class TaskContext:
    config: SuiteConfig
    corpus: Callable[[], Corpus]  # loaded on first use and shared between tasks
    run_dir: Path | None = None  # where per-sample outputs go (``--log-samples``); None: nowhere

    def readable_corpus(self) -> Corpus:
        """The suite's corpus; one that cannot be read makes the task unavailable (recorded), not an error."""
        from lizard_bench.data.corpus import CorpusError

        try:
            return self.corpus()
        except CorpusError as exc:
            raise TaskUnavailable(str(exc)) from None

    def save_items(self, handle: ModelHandle, task: str, rows: list[dict[str, Any]]) -> Path | None:
        """Keep a built-in task's per-item outcomes where ``--log-samples`` keeps lm-eval's, always: they are
        small, and they are what traces a score to its prompts and pairs two variants item by item."""
        return self.save_samples(handle, task, {task: rows})

    def save_samples(self, handle: ModelHandle, task: str, samples: dict[str, list[dict[str, Any]]]) -> Path | None:
        """Keep lm-eval's per-sample outputs beside the run's records; returns the file (None without a run dir)."""
        from lizard_bench.results.samples import samples_path, write_samples

        if self.run_dir is None:
            return None
        return write_samples(samples_path(self.run_dir, handle.model_name, handle.variant, task), samples)

    @property
    def seed(self) -> int:
        return self.config.seed

    @property
    def limit(self) -> int | None:
        return self.config.limit

    def options(self, task: Task) -> Any:
        """The task's ``Options``: its declared defaults overridden by the suite's ``task_options[task.name]``."""
        return task.suite_options(self.config)


class Task(ABC):
    """Subclass, set the class attributes, implement :meth:`run`, and decorate with ``@register_task``."""

    name: ClassVar[str]
    label: ClassVar[str]  # the task's name in tables and figures ("ARC-c", "Passkey")
    suite: ClassVar[str]
    # metric name -> 'higher' or 'lower' is better; the first is the headline unless paper_metric names another
    metrics: ClassVar[dict[str, str]]
    paper_metric: ClassVar[str | None] = None  # the metric the paper's tables report for this task, if any
    data_source: ClassVar[str]
    description: ClassVar[str] = ""
    # a dataclass of every option a suite may set under task_options.<name>: type, default and rule per field
    Options: ClassVar[type] = NoOptions

    @property
    def headline_metric(self) -> str:
        """The metric a one-column view shows for this task (the report's main table and score bars)."""
        return self.paper_metric or next(iter(self.metrics))

    def data_status(self, config: SuiteConfig) -> str | None:
        """None when the data is available; otherwise one line saying why not."""
        return None

    def reads_corpus(self, options: Any) -> bool:
        """Whether the task reads the suite's corpus (which is then loaded and checked up front)."""
        return False

    def suite_options(self, config: SuiteConfig) -> Any:
        """:attr:`Options` from the suite's ``task_options[self.name]`` over its defaults, every value checked.

        Preflight calls this for every selected task before any model loads, so an unknown key or a
        wrong value (``lengths: [-1]``) is an :class:`OptionError` in a second, not after a variant trained.
        """
        return build(self.Options, config.task_options.get(self.name, {}), at=("task_options", self.name),
                     noun="option", error=OptionError)

    @abstractmethod
    def run(self, handle: ModelHandle, context: TaskContext) -> list[MetricValue]:
        """Evaluate ``handle`` and return one value per metric in :attr:`metrics`."""
