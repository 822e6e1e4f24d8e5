"""A small task registry with a decorator, filled from ``tasks/`` and an entry-point group.

Built-in plugins live in the top-level ``tasks/`` folder, installed as the
``lizard_bench_tasks`` package so they are found after a non-editable install too. Third
parties add tasks without editing this project by declaring an entry point in the
``lizard_bench.tasks`` group that points at a module (importing it registers its tasks).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import pkgutil

from lizard_bench.errors import UnknownNameError
from lizard_bench.tasks.api import Task

ENTRY_POINT_GROUP = "lizard_bench.tasks"
BUILTIN_PACKAGE = "lizard_bench_tasks"

_REGISTRY: dict[str, type[Task]] = {}
_discovered = False


def register_task(cls: type[Task]) -> type[Task]:
    """Class decorator: make ``cls`` available under ``cls.name``. Duplicate names are an error."""
    existing = _REGISTRY.get(cls.name)
    if existing is not None and existing is not cls:
        raise ValueError(f"task name {cls.name!r} is registered twice ({existing.__module__} and {cls.__module__})")
    if not isinstance(getattr(cls, "label", None), str) or not cls.label:
        raise ValueError(f"task {cls.name!r}: set label, the name tables and figures show for it")
    if not cls.metrics:
        raise ValueError(f"task {cls.name!r}: declare at least one metric")
    for metric, direction in cls.metrics.items():
        if direction not in ("higher", "lower"):
            raise ValueError(f"task {cls.name!r}: metric {metric!r} direction must be 'higher' or 'lower'")
    if cls.paper_metric is not None and cls.paper_metric not in cls.metrics:
        raise ValueError(f"task {cls.name!r}: paper_metric {cls.paper_metric!r} is not one of its metrics")
    _REGISTRY[cls.name] = cls
    return cls


def discover() -> None:
    """Import the built-in plugins and every entry point once."""
    global _discovered
    if _discovered:
        return
    _discovered = True
    package = importlib.import_module(BUILTIN_PACKAGE)
    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{BUILTIN_PACKAGE}.{module.name}")
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        entry_point.load()


def all_tasks() -> dict[str, type[Task]]:
    discover()
    return dict(sorted(_REGISTRY.items()))


def get_task(name: str) -> Task:
    tasks = all_tasks()
    if name not in tasks:
        raise UnknownNameError(
            f"unknown task {name!r}: run `lizard-bench list tasks` to see the {len(tasks)} available")
    return tasks[name]()
