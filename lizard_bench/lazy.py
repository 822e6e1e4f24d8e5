"""Package attributes imported on first use (PEP 562), so importing a package costs only what is used.

``lizard-bench --help`` and ``list`` must not wait for torch, transformers, pandas and matplotlib
(several seconds on a small machine), yet ``from lizard_bench.models import load_model`` should
keep working: a package lists its public names and the submodule defining each.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_attributes(package: str, exports: dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that imports ``package.<exports[name]>`` when ``name`` is first asked for."""

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{exports[name]}"), name)

    return __getattr__
