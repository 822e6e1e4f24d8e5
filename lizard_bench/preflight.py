"""Everything about a run that can be checked before a model loads, checked in one place.

A mistake found after loading costs minutes (and, before this check existed, could train a
variant first, then write an 'error' record per task). So before any model time is spent,
:func:`preflight` checks the suite's names and every selected task's option values, the
devices, kernel backend and paths, each model's files (GGUF header, config.json,
safetensors headers) and whether its architecture can be linearized, and it reads and splits
the corpora the run will use, and the weights files of the checkpoints it would reuse. Each
problem is one :class:`ConfigError` (or another :class:`~lizard_bench.errors.InputError`) line
saying what was wrong and what to do. A run that is valid but will not do what a setting
suggests (``--log-samples`` with no lm-eval task, RoPE inputs longer than the model was trained
on) gets a one-line warning instead, printed once by :func:`print_warnings` before the run starts.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from lizard_bench.config import ConfigError, SuiteConfig
from lizard_bench.data.corpus import Corpus, CorpusError, load_corpus
from lizard_bench.errors import UnknownNameError
from lizard_bench.linearize.config import METHOD_PRESETS
from lizard_bench.linearize.convert import SUPPORTED_MODEL_TYPES
from lizard_bench.models.descriptions import TEACHER
from lizard_bench.models.inspect import ModelFacts, inspect_model
from lizard_bench.models.loading import load_tokenizer
from lizard_bench.models.locate import locate_model
from lizard_bench.results.store import check_writable_folder
from lizard_bench.tasks import Task, all_tasks, get_task
from lizard_bench.variants import VariantSpec, matching_checkpoints, resolve_variant, training_config, variant_training

DEVICE_TYPES = ("cpu", "cuda", "mps")


@dataclass
class CheckedRun:
    """What the checks found, handed to the run so nothing is looked up (or read) twice."""

    tasks: list[Task]
    variants: list[VariantSpec]
    device: torch.device
    backend: str
    corpus: Corpus | None  # the suite's corpus, read and split once; None when no selected task reads it
    warnings: list[str] = field(default_factory=list)  # one line each, for print_warnings


def preflight(config: SuiteConfig, *, evaluate: bool = True, retrain: bool = False) -> CheckedRun:
    """Check ``config`` against this machine and its files; raises an InputError naming the first problem.

    ``evaluate=False`` (``lizard-bench train``) leaves out the tasks and the suite's corpus;
    ``retrain`` leaves out the checkpoints the run would otherwise reuse (it rebuilds them).
    """
    settings = check_settings(config, evaluate=evaluate)
    tasks, train = settings.tasks, settings.train
    lengths = input_lengths(config, tasks, train)
    warnings = list(settings.warnings)
    for model_name in config.models:
        warnings += check_model(model_name, inspect_model(locate_model(model_name)), linearize=train is not None,
                                lengths=lengths)
    if train is not None and not retrain:
        check_checkpoints(config, settings.variants, train)
    corpus = None
    if reads_corpus(config, tasks):
        corpus = checked_corpus(config.corpus, "corpus", split="heldout")
        if any(task.name == "corpus_perplexity" for task in tasks):
            check_enough_tokens(corpus, "heldout", config.perplexity.seq_len, "perplexity.seq_len", config.models)
    # a hub training corpus is read only if a variant must train (its checkpoint may exist): not here
    if train is not None and not isinstance(train.corpus, Corpus) and not train.corpus.startswith("hf:"):
        training_corpus = checked_corpus(train.corpus, "training corpus", split="train")
        check_enough_tokens(training_corpus, "train", train.seq_len, "training seq_len", config.models)
    return CheckedRun(tasks=tasks, variants=settings.variants, device=settings.device, backend=settings.backend,
                      corpus=corpus, warnings=warnings)


def print_warnings(warnings: list[str]) -> None:
    """Each warning once, on stderr, before any model time: the run goes on, the user knows what it will not do."""
    for warning in dict.fromkeys(warnings):
        print(f"lizard-bench: warning: {warning}", file=sys.stderr, flush=True)


@dataclass
class Settings:
    """The parts of a suite that need no file: tasks, variants, recipe, device and backend, all checked."""

    tasks: list[Task]
    variants: list[VariantSpec]
    train: Any  # TrainConfig, or None when no variant is linearized
    device: torch.device
    backend: str
    warnings: list[str] = field(default_factory=list)


def check_settings(config: SuiteConfig, *, evaluate: bool = True) -> Settings:
    """Names, option values, training recipe, device, backend and output folders (no model or corpus read)."""
    tasks = selected_tasks(config) if evaluate else []
    variants = [resolve_variant(name, config) for name in config.variants]
    check_task_variants(config, tasks)
    linearized = [spec for spec in variants if spec.method is not None]
    train = training_config(config) if linearized else None  # a bad training section fails here too
    lengths = input_lengths(config, tasks, train)
    for spec in linearized:
        check_anchor_coverage(spec, lengths)
    if linearized and config.dtype == "float16":
        raise ConfigError("linearized variants train their added parameters in the model's dtype, and float16 "
                          "training has no loss scaling here: use --dtype bfloat16 or float32")
    device = check_device(config.device)
    backend = check_backend(device, config.kernel_backend)
    check_writable_folder(Path(config.results_dir), "results_dir")
    if config.data_dir is not None and not Path(config.data_dir).expanduser().is_dir():
        raise ConfigError(f"data_dir {config.data_dir} is not a folder: pass the folder 'lizard-bench export-data' "
                          "wrote (DIR/<task>/<split>.jsonl)")
    warning = log_samples_warning(config, tasks)
    return Settings(tasks=tasks, variants=variants, train=train, device=device, backend=backend,
                    warnings=[warning] if warning else [])


def check_task_variants(config: SuiteConfig, tasks: list[Task]) -> None:
    """``task_variants``' task names and variant names are known (names absent from this run, by flags, are fine).

    Why its own message: resolve_variant's says to define the name under ``variant_options``, but the
    mistake is in ``task_variants.<task>``, and that is where the user should look.
    """
    selected = {task.name for task in tasks}
    for task_name, names in config.task_variants.items():
        if task_name not in selected:
            resolve_task(task_name, config)
        for name in names:
            if name != TEACHER and name not in METHOD_PRESETS and "method" not in config.variant_options.get(name, {}):
                raise UnknownNameError(
                    f"task_variants.{task_name}: unknown variant {name!r}: name {TEACHER}, a method "
                    f"({', '.join(METHOD_PRESETS)}) or a variant defined under variant_options with a 'method' key")
            resolve_variant(name, config)


def check_anchor_coverage(spec: VariantSpec, lengths: dict[str, int]) -> None:
    """Refuse anchors that, with the window, reach every token of every input the run trains and evaluates on.

    Why: the window's softmax then sees the whole sequence, so the layer is the teacher's exact softmax,
    the linear branch never stands in for a token, and the teacher's scores are reported under the
    variant's name. Only the anchors are judged: a window that covers short inputs on its own is the
    method's default meeting a smoke test (tiny models at seq_len 32), and a layer without a linear
    branch is a softmax layer by design.
    """
    layer = spec.config
    if layer is None or not layer.linear_branch or not layer.num_anchors or not lengths:
        return
    longest = max(lengths.values())
    if layer.window < longest <= layer.window + layer.num_anchors:
        inputs = ", ".join(f"{where} {length}" for where, length in lengths.items())
        raise ConfigError(
            f"variant {spec.name!r}: num_anchors {layer.num_anchors} + window {layer.window} reach every token of "
            f"this run's inputs ({inputs}), which makes the layer exact softmax (no token is left for the linear "
            f"branch to stand in for): set variant_options.{spec.name}.num_anchors below {longest - layer.window}")


def log_samples_warning(config: SuiteConfig, tasks: list[Task]) -> str | None:
    """A warning when ``--log-samples`` is set but no task of the run writes samples (only lm-eval tasks do)."""
    if not config.lm_eval.get("log_samples") or not tasks:
        return None
    if any(hasattr(task.suite_options(config), "log_samples") for task in tasks):
        return None
    return (f"--log-samples keeps lm-eval tasks' per-sample outputs, but none of this run's tasks "
            f"({', '.join(task.name for task in tasks)}) is an lm-eval task, so no samples will be written")


DAMAGED_CHECKPOINT = "the checkpoint is damaged; rerun with --retrain to rebuild it"  # what `run`/`train` then do


def check_checkpoints(config: SuiteConfig, variants: list[VariantSpec], train: Any) -> None:
    """The weights files of each checkpoint the run may reuse are whole (headers read, nothing loaded).

    Why here: a truncated file otherwise fails after the teacher's units ran, and on every rerun.
    Which folder the run reuses depends on the base weights' hash, known only once they load, so
    every folder whose method config and recipe match is checked.
    """
    from lizard_bench.linearize.checkpoint import check_checkpoint_files, read_manifest

    for model_name in config.models:
        for spec in (spec for spec in variants if spec.method is not None):
            recipe = variant_training(spec, train)
            for folder in matching_checkpoints(Path(config.results_dir), model_name, spec, recipe):
                check_checkpoint_files(folder, read_manifest(folder) or {}, advice=DAMAGED_CHECKPOINT)


def reads_corpus(config: SuiteConfig, tasks: list[Task]) -> bool:
    """Whether any selected task reads the suite's corpus."""
    return any(task.reads_corpus(task.suite_options(config)) for task in tasks)


def selected_tasks(config: SuiteConfig) -> list[Task]:
    """The suite's tasks, with ``task_options`` checked: unknown tasks and keys are refused, values parsed.

    Names may be comma lists and suite names (``glue``, ``long_context``: every registered task of
    that suite); a name the registry does not know runs through lm-eval when lm-eval knows it.
    Options for a known task that this run does not select (``--task`` picked a subset) are ignored.
    """
    tasks = [resolve_task(name, config) for name in expand_task_names(config.tasks)]
    for task_name in [name for name in config.task_options if name not in {task.name for task in tasks}]:
        resolve_task(task_name, config)  # an unknown name is a typo even when unselected
    for task in tasks:
        task.suite_options(config)  # its Options, built strictly: unknown keys and wrong values fail here
    return tasks


def expand_task_names(names: list[str]) -> list[str]:
    """Comma lists split, suite names replaced by their registered tasks, duplicates dropped (order kept)."""
    registered = all_tasks()
    suites: dict[str, list[str]] = {}
    for name, cls in registered.items():
        suites.setdefault(cls.suite, []).append(name)
    expanded: list[str] = []
    for item in (part.strip() for name in names for part in name.split(",")):
        if item and item not in registered and item in suites:
            expanded.extend(suites[item])
        elif item:
            expanded.append(item)
    return list(dict.fromkeys(expanded))


def resolve_task(name: str, config: SuiteConfig) -> Task:
    """A registered task, or any task, group or tag lm-eval knows (with the suite's ``lm_eval_include_path``)."""
    try:
        return get_task(name)
    except UnknownNameError:
        from lizard_bench.evaluation.passthrough import find_lm_eval_task

        if config.lm_eval_include_path is not None:
            check_include_path(name, Path(config.lm_eval_include_path))
        found = find_lm_eval_task(name, config.lm_eval_include_path)
        if found is None:
            where = f" or in {config.lm_eval_include_path}" if config.lm_eval_include_path else ""
            raise UnknownNameError(
                f"unknown task {name!r}: neither a lizard-bench task (`lizard-bench list tasks`) nor one lm-eval "
                f"knows{where} (add your own YAML with --include-path DIR)") from None
        return found


def check_include_path(name: str, folder: Path) -> None:
    """``folder`` is a folder, and no YAML in it that mentions task ``name`` fails to parse.

    Why: lm-eval's index skips a YAML it cannot parse without a word, so a task defined in a file
    with a syntax error reads as unknown; the file's own error (line and problem) is what to fix.
    Checked before lm-eval indexes its tasks (10-30 s).
    """
    import yaml

    if not folder.is_dir():
        raise ConfigError(f"lm_eval_include_path {folder} is not a folder of lm-eval task YAMLs")
    mentions = re.compile(rf"(?<![\w-]){re.escape(name)}(?![\w-])")
    for path in sorted(folder.glob("**/*.yaml")):
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # nothing to match the name in; lm-eval skips it too
        if not mentions.search(text):
            continue
        try:
            yaml.compose(text, Loader=yaml.SafeLoader)  # syntax only: lm-eval's !function tags need no constructor
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = f":{mark.line + 1}" if mark is not None else ""
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise ConfigError(f"task {name!r}: {path}{line}: malformed YAML: {problem} (lm-eval skips a task file "
                              "it cannot parse): fix the file") from None


def check_device(requested: str) -> torch.device:
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N`` that exists here."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(requested)
    except (RuntimeError, ValueError):
        raise ConfigError(f"device {requested!r} is not a device name: use auto, cpu, cuda or cuda:N") from None
    if device.type not in DEVICE_TYPES:
        raise ConfigError(f"device {requested!r}: lizard-bench runs on {', '.join(DEVICE_TYPES)} (or auto)")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {requested!r}: no CUDA GPU is visible here (torch.cuda.is_available() is "
                              "False); use --device cpu or auto")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"device {requested!r}: this machine has {torch.cuda.device_count()} CUDA GPU(s), "
                              f"numbered from 0")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device {requested!r}: MPS is not available here; use --device cpu or auto")
    return device


def check_backend(device: torch.device, requested: str) -> str:
    """The kernel backend that will run: Triton needs a CUDA device and the triton package."""
    from lizard_bench.kernels import select_backend

    if requested not in ("auto", "torch", "triton"):
        raise ConfigError(f"kernel_backend {requested!r}: choose auto, torch or triton")
    if requested == "triton" and device.type != "cuda":
        raise ConfigError(f"kernel backend 'triton' runs on CUDA GPUs, but the device is {device}: use "
                          "--kernel-backend torch (or auto)")
    try:
        return select_backend(device, None if requested == "auto" else requested)
    except (RuntimeError, ValueError) as exc:
        raise ConfigError(str(exc)) from None


# the inputs checked against a RoPE model's trained length; the long-context probes go past it on purpose
TRAINED_LENGTH_INPUTS = ("perplexity.seq_len", "training seq_len")


def check_model(name: str, facts: ModelFacts, *, linearize: bool, lengths: dict[str, int]) -> list[str]:
    """Refuse a model the suite cannot use: not linearizable, or too few positions for its inputs.

    Returns warnings: a RoPE model has no hard limit, but inputs longer than it was trained on
    (``max_position_embeddings``) score worse, which a user should know before reading the numbers.
    """
    if linearize and facts.model_type is not None and facts.model_type not in SUPPORTED_MODEL_TYPES \
            and not facts.has_kv_heads:
        raise ConfigError(
            f"model {name!r} is a {facts.model_type!r} model, which cannot be linearized (Llama-family only: "
            f"{', '.join(SUPPORTED_MODEL_TYPES)}): run it with --variant softmax, or pick a Llama-family model"
        )
    if facts.max_positions is not None:
        too_long = {where: length for where, length in lengths.items() if length > facts.max_positions}
        if too_long:
            where, length = max(too_long.items(), key=lambda item: item[1])
            raise ConfigError(f"model {name!r} has {facts.max_positions} positions, but {where} asks for "
                              f"{length}-token inputs: lower it to at most {facts.max_positions}")
    return trained_length_warnings(name, facts, lengths)


def trained_length_warnings(name: str, facts: ModelFacts, lengths: dict[str, int]) -> list[str]:
    """One warning per input of :data:`TRAINED_LENGTH_INPUTS` longer than the positions the model was trained on."""
    trained = facts.trained_positions
    if trained is None or facts.max_positions is not None:  # unknown, or a hard limit (refused above)
        return []
    return [f"model {name!r} was trained on {trained} positions (max_position_embeddings), but {where} asks for "
            f"{length}-token inputs: the positions past {trained} are untrained, so expect worse scores there "
            "(going on)"
            for where, length in lengths.items() if where in TRAINED_LENGTH_INPUTS and length > trained]


def input_lengths(config: SuiteConfig, tasks: list[Task], train: Any) -> dict[str, int]:
    """The longest input each part of the run feeds the model (for models with a hard position limit)."""
    lengths: dict[str, int] = {}
    names = {task.name for task in tasks}
    if "corpus_perplexity" in names:
        lengths["perplexity.seq_len"] = config.perplexity.seq_len
    if train is not None:
        lengths["training seq_len"] = train.seq_len
    for task in tasks:
        task_lengths = getattr(task.suite_options(config), "lengths", None)
        if task_lengths:
            lengths[f"{task.name}.lengths"] = max(task_lengths)
    return lengths


def checked_corpus(spec: str, label: str, *, split: str) -> Corpus:
    """Read ``spec`` once and check that it has text, and text in ``split``."""
    corpus = load_corpus(spec)
    if not any(document.text.strip() for document in corpus.documents):
        raise CorpusError(f"{label} {spec!r} holds no text: pass a corpus with documents in it")
    if not corpus.text(split).strip():
        raise CorpusError(f"{label} {spec!r} has no {split} text ({len(corpus.documents)} document(s); the held-out "
                          "split takes whole documents): add documents, or split the text into several files/lines")
    return corpus



# A token never covers less than one byte, and text averages about 4 bytes per token: a split
# with fewer bytes than the window is surely too short, one with 16x as many surely long enough;
# only in between is the tokenizer loaded (a few seconds) to count.
_SURELY_ENOUGH_BYTES_PER_TOKEN = 16


def check_enough_tokens(corpus: Corpus, split: str, needed: int, label: str, models: list[str]) -> None:
    """``corpus``'s ``split`` holds at least one window of ``needed`` tokens for every model's tokenizer."""
    size = len(corpus.text(split).encode("utf-8"))
    if size >= _SURELY_ENOUGH_BYTES_PER_TOKEN * needed:
        return
    counts = {"bytes": size} if size < needed else {
        name: len(load_tokenizer(locate_model(name))(corpus.text(split), add_special_tokens=False)["input_ids"])
        for name in models
    }
    short = {name: count for name, count in counts.items() if count < needed}
    if short:
        name, count = next(iter(short.items()))
        unit = "bytes" if name == "bytes" else f"tokens for {name}"
        raise CorpusError(f"the {split} split of corpus {corpus.name!r} has {count} {unit}, fewer than one "
                          f"{label} window of {needed}: pass a longer corpus or a smaller window")
