"""The task plugin API and registry (the plugins themselves live in the top-level ``tasks/``)."""

from lizard_bench.tasks.api import MetricValue, ModelHandle, OptionError, Task, TaskContext, TaskUnavailable
from lizard_bench.tasks.registry import all_tasks, get_task, register_task

__all__ = [
    "MetricValue",
    "ModelHandle",
    "OptionError",
    "Task",
    "TaskContext",
    "TaskUnavailable",
    "all_tasks",
    "get_task",
    "register_task",
]
