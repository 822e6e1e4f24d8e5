"""The import rules of docs/design.md §1, read from the source: each part imports only from layers below its own.

A part is a subpackage or top-level module of ``lizard_bench``. Within one layer parts may
import each other as long as no two import each other (no cycles); across layers, only down.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "lizard_bench"

LAYERS: list[set[str]] = [
    {"errors", "lazy", "typed_config"},  # what everything may use (typed_config: the strict settings loader)
    {"config", "results", "data", "kernels", "provenance"},  # settings, records, corpora, attention arithmetic
    {"models"},  # finding, checking and loading teachers; the kernel-routed teacher
    {"linearize"},  # the method: attention forms, conversion, training, checkpoints, model directories
    {"tasks"},  # the task plugin API
    {"efficiency", "long_context", "evaluation"},  # what tasks measure with: efficiency, long context, lm-eval
    {"variants", "preflight", "plan", "runner", "train_suite", "export_command"},  # running suites
    {"report", "cli"},  # what users read and type
]
LAYER_OF = {part: index for index, layer in enumerate(LAYERS) for part in layer}


def part_of(module: str) -> str:
    return module.split(".")[1]


def imports() -> dict[str, set[str]]:
    """part -> the other parts it imports (at any depth of the file, lazy imports included)."""
    found: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE.parent).with_suffix("")
        if relative.name == "__init__" and len(relative.parts) == 2:
            continue  # lizard_bench/__init__.py itself
        source = part_of(".".join(relative.parts))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else (
                [alias.name for alias in node.names] if isinstance(node, ast.Import) else [])
            for name in names:
                if name.startswith("lizard_bench.") and part_of(name) != source:
                    found.setdefault(source, set()).add(part_of(name))
    return found


def test_every_part_has_a_layer():
    parts = {path.stem if path.is_file() else path.name for path in PACKAGE.iterdir()
             if (path.suffix == ".py" and path.stem != "__init__") or (path / "__init__.py").is_file()}
    assert parts == set(LAYER_OF), f"parts without a layer: {sorted(parts - set(LAYER_OF))}"


def test_imports_only_go_down_or_sideways():
    upward = [f"{source} -> {target}" for source, targets in imports().items() for target in targets
              if LAYER_OF[target] > LAYER_OF[source]]
    assert not upward, f"imports against the layers: {upward}"


def test_no_two_parts_import_each_other():
    graph = imports()
    cycles = sorted({tuple(sorted((a, b))) for a, targets in graph.items() for b in targets if a in graph.get(b, ())})
    assert not cycles, f"parts importing each other: {cycles}"


def test_kernels_import_nothing_of_ours_but_errors():
    assert imports().get("kernels", set()) <= {"errors"}
