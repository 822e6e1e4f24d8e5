"""Suite configuration: YAML files under ``configs/`` with CLI overrides.

A suite names the models, variants and tasks to run, the budgets, and the seed. Typos must
not pass silently (a misspelled ``limt:`` would otherwise run a full, hours-long suite), so
unknown keys, wrong types and malformed YAML raise :class:`ConfigError` naming the file, line and key
(:mod:`lizard_bench.typed_config` reads the file against the dataclasses below).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from lizard_bench.errors import ConfigError
from lizard_bench.typed_config import KeyPath, build, rule

# a run id names one folder under results_dir: no separators, no '..', nothing hidden
PLAIN_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")
NON_EMPTY = rule(bool, "must name at least one entry")


@dataclass
class PerplexityBudget:
    """How much held-out text the perplexity task reads, and in what windows."""

    seq_len: int = 512
    max_tokens: int = 16384
    batch_size: int = field(default=1, metadata=rule(lambda n: n >= 1, "must be >= 1"))


@dataclass
class SuiteConfig:
    """One benchmark suite. Field defaults are the built-in defaults; YAML overrides them."""

    name: str = "default"
    models: list[str] = field(default_factory=lambda: ["smollm2-135m"], metadata=NON_EMPTY)
    variants: list[str] = field(default_factory=lambda: ["softmax"], metadata=NON_EMPTY)
    tasks: list[str] = field(default_factory=lambda: ["corpus_perplexity"], metadata=NON_EMPTY)
    corpus: str = "pydoc"
    seed: int = field(default=0, metadata=rule(lambda n: 0 <= n < 2**32, "must be between 0 and 2**32 - 1 "
                                                                         "(numpy's range)"))
    limit: int | None = field(default=None, metadata=rule(lambda n: n is None or n >= 1,
                                                          "must be a positive integer or null"))
    device: str = "auto"
    dtype: Literal["float32", "float16", "bfloat16"] = "float32"
    kernel_backend: str = "auto"
    results_dir: str = field(default="results", metadata=rule(str.strip, "must name a folder"))
    run_id: str | None = field(default=None, metadata=rule(
        lambda name: name is None or PLAIN_NAME.fullmatch(name),
        "must be a plain folder name (letters, digits, '.', '_', '-'; not starting with '.')"))
    data_dir: str | None = None  # local task data: DATA_DIR/<task>/<split>.jsonl (offline runs)
    perplexity: PerplexityBudget = field(default_factory=PerplexityBudget)
    # per-task settings, e.g. {"passkey": {"lengths": [1024, 2048]}}; each task declares and checks its keys
    task_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    # linearization options per variant, e.g. {"lizard": {"window": 64}, "hybrid": {"method": "lizard", ...}}
    variant_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    # a training recipe file (a shipped name such as train_paper, or a path) that `training` then overrides
    training_recipe: str | None = None
    # training recipe for linearized variants (TrainConfig fields); empty = the offline CPU budget. A string
    # names a recipe file instead (`training: train_paper` is `training_recipe: train_paper`)
    training: dict[str, Any] | str = field(default_factory=dict)
    # tasks that run on some variants only, e.g. {"prefill": ["softmax", "lizard_plus"]}; others run on all
    task_variants: dict[str, list[str]] = field(default_factory=dict)
    # folder of the user's own lm-eval task YAMLs: their names become tasks of the run
    lm_eval_include_path: str | None = None
    # settings for every lm-eval task of the run (num_fewshot, batch_size, log_samples, ...), over task_options
    lm_eval: dict[str, Any] = field(default_factory=dict)

    def runs(self, task: str, variant: str) -> bool:
        """Whether ``task`` runs on ``variant`` in this suite."""
        return task not in self.task_variants or variant in self.task_variants[task]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def config_hash(self) -> str:
        """A short content hash of the settings that change results (not where they are written)."""
        relevant = {k: v for k, v in self.to_dict().items() if k not in ("results_dir", "run_id")}
        blob = json.dumps(relevant, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


# what the run-wide ``lm_eval`` section may set (each lm-eval task's own option of that name, for all of them)
LM_EVAL_SETTINGS = ("num_fewshot", "batch_size", "max_length", "max_gen_toks", "add_bos_token", "bootstrap_iters",
                    "log_samples")


def shipped_config(name: str) -> Path | None:
    """``configs/<name>.yaml`` as installed (the ``lizard_bench_configs`` package), or None."""
    import importlib.resources

    candidate = Path(str(importlib.resources.files("lizard_bench_configs") / f"{name}.yaml"))
    return candidate if candidate.is_file() else None


def shipped_suites() -> dict[str, str]:
    """Every shipped suite by name, with the first line of its header (what it is for)."""
    import importlib.resources

    folder = Path(str(importlib.resources.files("lizard_bench_configs")))
    suites = {}
    for path in sorted(folder.glob("*.yaml")):
        text = path.read_text(encoding="utf-8")
        if "stage1" in (yaml.safe_load(text) or {}):  # a training recipe, not a suite
            continue
        header = next((line.lstrip("# ").strip() for line in text.splitlines() if line.startswith("#")), "")
        suites[path.stem] = header
    return suites


def resolve_suite(name_or_path: str | Path) -> Path:
    """A suite YAML path, or the name of a shipped suite (``paper-table9`` -> configs/paper-table9.yaml)."""
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path
    shipped = shipped_config(str(name_or_path)) if path.suffix == "" and len(path.parts) == 1 else None
    if shipped is not None:
        return shipped
    raise ConfigError(f"{name_or_path}: config file not found (pass a YAML path or a shipped suite: "
                      f"{', '.join(shipped_suites())})")


def recipe_path(name_or_path: str) -> Path:
    """A training recipe file: a path, or the name of a shipped one (``train_paper``)."""
    path = Path(name_or_path).expanduser()
    found = path if path.is_file() else shipped_config(name_or_path)
    if found is None:
        raise ConfigError(f"training_recipe {name_or_path!r}: no such file or shipped recipe (train_cpu, train_paper)")
    return found


def read_yaml(path: Path, error: type[Exception] = ConfigError) -> tuple[dict[str, Any], dict[KeyPath, int]]:
    """A YAML file's top-level mapping and the line of every key and list item in it (by key path)."""
    loader = yaml.SafeLoader(path.read_text(encoding="utf-8"))
    try:
        root = loader.get_single_node()
        data = loader.construct_document(root) if root is not None else {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise error(f"{path}{line}: malformed YAML: {problem}") from None
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        raise error(f"{path}:{root.start_mark.line + 1}: the top level must be a mapping of settings")
    lines: dict[KeyPath, int] = {}
    _collect_lines(root, (), lines)
    return data, lines


def _collect_lines(node: Any, path: KeyPath, lines: dict[KeyPath, int]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            lines[(*path, key_node.value)] = key_node.start_mark.line + 1
            _collect_lines(value_node, (*path, key_node.value), lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines[(*path, index)] = item.start_mark.line + 1
            _collect_lines(item, (*path, index), lines)


def merge_settings(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``changes`` over ``base``, nested mappings merged key by key (``stage1: {tokens: N}`` keeps stage1's lr)."""
    merged = dict(base)
    for key, value in changes.items():
        merged[key] = merge_settings(merged[key], value) if isinstance(value, dict) and isinstance(
            merged.get(key), dict) else value
    return merged


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> SuiteConfig:
    """Read a suite YAML (or the built-in defaults when ``path`` is None) and apply overrides.

    ``overrides`` use dotted keys for nested sections (``{"perplexity.seq_len": 256}``);
    ``None`` values are ignored so that unset CLI flags do not clobber the file.
    """
    config = SuiteConfig()
    if path is not None:
        path = resolve_suite(path)
        data, lines = read_yaml(path)
        config = build(SuiteConfig, data, where=str(path), lines=lines)
    changes: dict[str, Any] = {}
    for dotted, value in (overrides or {}).items():
        if value is not None:
            *parents, leaf = dotted.split(".")
            section = changes
            for part in parents:
                section = section.setdefault(part, {})
            section[leaf] = value
    if "lm_eval" in changes:  # one run-wide lm-eval setting (--num-fewshot), beside the file's others
        changes["lm_eval"] = {**config.lm_eval, **changes["lm_eval"]}
    if changes:
        config = build(SuiteConfig, changes, where="command line", base=config)
    where = str(path) if path else "defaults"
    _validate(config, where=f"{where} with the command line's flags" if changes else where)
    _make_include_path_absolute(config)
    return config


def _make_include_path_absolute(config: SuiteConfig) -> None:
    """Resolve ``lm_eval_include_path`` (after ``~``) against the working directory, where lm-eval reads it.

    Why: the manifest, the config hash and every pass-through record keep this value, and a bare
    ``.`` there names no folder once the run is read from elsewhere (or resumed from another
    directory, where it would be another folder under the same hash).
    """
    if config.lm_eval_include_path is not None:
        config.lm_eval_include_path = str(Path(config.lm_eval_include_path).expanduser().resolve())


def _validate(config: SuiteConfig, where: str) -> None:
    """The checks across fields (each field's own type and range are checked as it is read)."""
    if isinstance(config.training, str):  # a recipe file's name or path
        if config.training_recipe is not None:
            raise ConfigError(f"{where}: 'training' names a recipe file and so does 'training_recipe': keep one")
        config.training_recipe, config.training = config.training, {}
    if config.perplexity.seq_len < 2 or config.perplexity.max_tokens < config.perplexity.seq_len:
        raise ConfigError(f"{where}: perplexity needs seq_len >= 2 and max_tokens >= seq_len")
    unknown = sorted(set(config.lm_eval) - set(LM_EVAL_SETTINGS))
    if unknown:
        raise ConfigError(f"{where}: unknown lm_eval setting(s) {', '.join(unknown)} "
                          f"(known: {', '.join(LM_EVAL_SETTINGS)})")
