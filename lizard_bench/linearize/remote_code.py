"""The model code a saved linearized directory carries, generated from lizard_bench's own modules.

transformers loads a custom architecture from a module file named in config.json's
``auto_map`` and copies beside it only the files that module imports as ``from .name import ...``
(``dynamic_module_utils.get_relative_imports``): one flat folder, no packages. It also refuses
a module that imports, anywhere outside a ``try``, a package missing from the environment
(``check_imports``). So a directory gets a flat copy of the modules the model needs: module
``lizard_bench.a.b`` is written as ``lizard_a_b.py``, and each ``from lizard_bench.a.b import x``
becomes ``from .lizard_a_b import x`` (a submodule import ``from lizard_bench.a import b`` becomes
``from . import lizard_a_b as b``). Nothing else changes, so the shipped code is the code this
package runs, never a second copy to keep in step by hand.

Left out (:data:`LEFT_OUT`): the Triton kernels (a directory runs the PyTorch backend, which
needs nothing but torch) and this generator. An import of a left-out module, which only
happens inside functions, becomes a ``raise ImportError`` naming it.
"""

from __future__ import annotations

import ast
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import lizard_bench

PACKAGE = "lizard_bench"
ENTRY_MODULE = "lizard_bench.linearize.modeling"
LEFT_OUT = {
    "lizard_bench.kernels.triton_backend": "a model directory carries the PyTorch kernels only",
    "lizard_bench.linearize.remote_code": "a directory's own code is re-saved by transformers, which copies it",
}


def shipped_name(module: str) -> str:
    """The flat module name ``module`` gets in a model directory: lizard_bench.a.b -> lizard_a_b."""
    return "lizard_" + module.removeprefix(f"{PACKAGE}.").replace(".", "_")


AUTO_MAP = {
    "AutoConfig": f"{shipped_name(ENTRY_MODULE)}.LizardLlamaConfig",
    "AutoModelForCausalLM": f"{shipped_name(ENTRY_MODULE)}.LizardLlamaForCausalLM",
}


def _left_out(module: str) -> str | None:
    return next((why for name, why in LEFT_OUT.items() if module == name or module.startswith(name + ".")), None)


def _is_module(name: str) -> bool:
    """Whether ``name`` is a module (a submodule of a package), not a name defined in one."""
    parent = importlib.util.find_spec(name.rpartition(".")[0])
    return parent.submodule_search_locations is not None and importlib.util.find_spec(name) is not None


@dataclass(frozen=True)
class _Import:
    """One ``from lizard_bench... import ...`` statement: where it is and what it becomes."""

    node: ast.ImportFrom
    nested: bool  # inside a function (not run when the module is imported)
    where: str  # the source file, for errors

    def targets(self) -> list[tuple[str, list[ast.alias]]]:
        """(module, names imported from it) pairs; a submodule import is its own pair with no names."""
        pairs: list[tuple[str, list[ast.alias]]] = []
        names: list[ast.alias] = []
        for alias in self.node.names:
            full = f"{self.node.module}.{alias.name}"
            if _is_module(full):
                pairs.append((full, [alias]))
            else:
                names.append(alias)
        return ([(self.node.module, names)] if names else []) + pairs

    def rewritten(self) -> list[str]:
        statements = []
        for module, aliases in self.targets():
            why = _left_out(module)
            if why is not None:
                if not self.nested:
                    raise RuntimeError(f"{self.where}:{self.node.lineno}: {module} is left out of model directories "
                                       f"({why}): import it inside the function that needs it")
                statements.append(f"raise ImportError({f'{module} is not part of this model directory: {why}'!r})")
            elif module != self.node.module:  # the submodule itself: from lizard_bench.a import b
                statements.append(f"from . import {shipped_name(module)} as {aliases[0].asname or aliases[0].name}")
            else:
                listed = ", ".join(a.name if a.asname is None else f"{a.name} as {a.asname}" for a in aliases)
                statements.append(f"from .{shipped_name(module)} import {listed}")
        return statements


def _package_imports(tree: ast.Module, where: str) -> list[_Import]:
    """Every import of lizard_bench in ``tree``; forms the rewriting cannot express are errors."""
    found: list[_Import] = []

    def visit(node: ast.AST, nested: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = nested or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            if isinstance(child, ast.Import) and any(a.name.split(".")[0] == PACKAGE for a in child.names):
                raise RuntimeError(f"{where}:{child.lineno}: write 'from {PACKAGE}.x import y' instead")
            if isinstance(child, ast.ImportFrom) and child.level:
                raise RuntimeError(f"{where}:{child.lineno}: relative imports cannot be shipped; import from {PACKAGE}")
            if isinstance(child, ast.ImportFrom) and (child.module or "").split(".")[0] == PACKAGE:
                if child.module == PACKAGE:
                    raise RuntimeError(f"{where}:{child.lineno}: import from a {PACKAGE} submodule, not the package")
                found.append(_Import(child, nested, where))
            visit(child, inner)

    visit(tree, False)
    return found


def _source_file(module: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise RuntimeError(f"cannot find the source of {module}")
    return Path(spec.origin)


def _rewrite(module: str, source: str) -> tuple[str, set[str]]:
    """``source`` with its lizard_bench imports rewritten, and the shipped modules it needs."""
    where = str(_source_file(module))
    imports = _package_imports(ast.parse(source), where)
    lines = source.splitlines(keepends=True)
    needed: set[str] = set()
    for found in sorted(imports, key=lambda i: (i.node.lineno, i.node.col_offset), reverse=True):
        node = found.node
        first, last = lines[node.lineno - 1], lines[node.end_lineno - 1]
        indent = first[: node.col_offset]
        if indent.strip():
            raise RuntimeError(f"{where}:{node.lineno}: put the {PACKAGE} import on its own line")
        tail = last.encode()[node.end_col_offset :].decode()
        replacement = ("\n" + indent).join(found.rewritten())
        lines[node.lineno - 1 : node.end_lineno] = [indent + replacement + tail]
        needed.update(m for m, _ in found.targets() if _left_out(m) is None)
    return "".join(lines), needed


def model_code() -> dict[str, str]:
    """File name -> source for every module a directory carries, starting from :data:`ENTRY_MODULE`."""
    files: dict[str, str] = {}
    pending, seen = [ENTRY_MODULE], set()
    while pending:
        module = pending.pop()
        if module in seen:
            continue
        seen.add(module)
        path = _source_file(module)
        code, needed = _rewrite(module, path.read_text(encoding="utf-8"))
        header = (f"# {shipped_name(module)}.py: {module} of lizard-bench {lizard_bench.__version__}, its imports "
                  "rewritten for a model directory (lizard_bench/linearize/remote_code.py). Generated; do not edit.\n")
        filename = f"{shipped_name(module)}.py"
        if filename in files:
            raise RuntimeError(f"two modules would both be shipped as {filename}")
        files[filename] = header + code
        pending.extend(sorted(needed - seen))
    return files


def write_model_code(directory: str | Path) -> list[Path]:
    """Write :func:`model_code` into ``directory`` (beside a config.json whose ``auto_map`` is :data:`AUTO_MAP`)."""
    written = []
    for filename, code in model_code().items():
        path = Path(directory) / filename
        path.write_text(code, encoding="utf-8")
        written.append(path)
    return written
