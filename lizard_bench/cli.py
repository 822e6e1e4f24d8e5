"""Command line: ``lizard-bench run|train|list|report|compare|export-data|export``.

``python run_bench.py`` is ``lizard-bench run`` on the default suite.
"""

from __future__ import annotations

import argparse
import importlib.resources
import os
import sys
from pathlib import Path
from typing import NoReturn

from lizard_bench.config import ConfigError, load_config
from lizard_bench.errors import InputError
from lizard_bench.evaluation.commands import add_subcommands as add_evaluation_commands
from lizard_bench.export_command import add_subcommands as add_export_command
from lizard_bench.models.locate import EMBEDDED_MODELS
from lizard_bench.report.commands import add_subcommands as add_report_commands


class _OneLineErrors(argparse.ArgumentParser):
    """argparse prints the whole usage before a mistake; one line that names it and points to --help reads better."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineErrors(prog="lizard-bench", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run a benchmark suite and write records under results/<run-id>/")
    run.add_argument("--config", help="suite YAML path or shipped suite name (lizard-bench list suites); "
                                      "default: configs/default.yaml")
    run.add_argument("--model", dest="models", action="append", help="embedded alias, hub id or local dir (repeatable)")
    run.add_argument("--variant", dest="variants", action="append", help="variant to run (repeatable)")
    run.add_argument("--task", dest="tasks", action="append",
                     help="task, suite (glue, superglue, paper, long_context, ...) or any lm-eval task or group; "
                          "comma-separated or repeated")
    run.add_argument("--corpus", help="pydoc | path to .txt/.jsonl | hf:DATASET[:CONFIG]")
    run.add_argument("--limit", type=int, help="cap each task's examples (quick runs)")
    run.add_argument("--seed", type=int)
    run.add_argument("--device", help="auto | cpu | cuda | cuda:N")
    run.add_argument("--dtype", choices=("float32", "float16", "bfloat16"))
    run.add_argument("--kernel-backend", choices=("auto", "torch", "triton"))
    run.add_argument("--results-dir", help="parent folder of run directories (default: results)")
    run.add_argument("--run-id", help="name of the run directory; an existing one is resumed")
    run.add_argument("--data-dir", help="local task data: DIR/<task>/<split>.jsonl (for offline machines)")
    run.add_argument("--seq-len", type=int, help="perplexity window length in tokens")
    run.add_argument("--max-tokens", type=int, help="perplexity: held-out tokens to score at most")
    run.add_argument("--include-path", help="folder of your own lm-eval task YAMLs (their names become tasks)")
    run.add_argument("--num-fewshot", type=int, help="few-shot examples for every lm-eval task of the run")
    run.add_argument("--batch-size", type=int, help="lm-eval scoring batch (padded, sorted by length)")
    run.add_argument("--log-samples", action="store_true", default=None,
                     help="keep lm-eval's per-sample outputs in results/<run-id>/samples/")
    run.add_argument("--retrain", action="store_true",
                     help="train the linearized variants again, replacing their matching checkpoints")
    run.add_argument("--dry-run", action="store_true",
                     help="print the plan (units, data, checkpoints, budgets, a time estimate) and load nothing; "
                          "exit 1 if anything needed is missing")
    run.set_defaults(handler=_run)

    train = commands.add_parser(
        "train", help="train (or find) the checkpoints of a suite's linearized variants; evaluates nothing",
        description="Train each linearized variant of the suite, or reuse its checkpoint. Several GPUs: "
                    "accelerate launch -m lizard_bench.cli train --config SUITE (data parallel or FSDP2); "
                    "then 'lizard-bench run --config SUITE' in one process reuses the checkpoints.",
    )
    train.add_argument("--config", help="suite YAML path or shipped suite name (default: configs/default.yaml)")
    train.add_argument("--model", dest="models", action="append", help="embedded alias, hub id or local dir")
    train.add_argument("--variant", dest="variants", action="append", help="variant to train (repeatable)")
    train.add_argument("--seed", type=int)
    train.add_argument("--device", help="auto | cpu | cuda | cuda:N (one process; accelerate launch picks its own)")
    train.add_argument("--dtype", choices=("float32", "float16", "bfloat16"))
    train.add_argument("--kernel-backend", choices=("auto", "torch", "triton"))
    train.add_argument("--results-dir",
                       help="checkpoints go to RESULTS_DIR/checkpoints/<model>/<variant>/<fingerprint>/")
    train.add_argument("--retrain", action="store_true", help="train again, replacing matching checkpoints")
    train.set_defaults(handler=_train)

    listing = commands.add_parser("list", help="show available tasks, models or variants")
    listing.add_argument("what", nargs="?", choices=("tasks", "models", "variants", "suites"), default="tasks")
    listing.add_argument("--data-dir", help="tasks: show what this --data-dir folder makes available")
    listing.add_argument("--include-path", help="tasks: also list the lm-eval tasks of this folder of YAMLs")
    listing.set_defaults(handler=_list)
    add_evaluation_commands(commands)
    add_export_command(commands)
    add_report_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except InputError as exc:  # the user's mistake: one line, exit 2; anything else is a bug with a traceback
        print(f"lizard-bench: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        if exc.filename is None:
            raise
        # a folder that turned out read-only or full, a file that vanished: the machine's state, not a bug
        print(f"lizard-bench: error: cannot use {exc.filename}: {exc.strerror or exc}; check the path, its "
              "permissions and free space", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    from lizard_bench.train_suite import refuse_multiprocess_evaluation

    refuse_multiprocess_evaluation()
    overrides = {
        "models": args.models, "variants": args.variants, "tasks": args.tasks, "corpus": args.corpus,
        "limit": args.limit, "seed": args.seed, "device": args.device, "dtype": args.dtype,
        "kernel_backend": args.kernel_backend, "results_dir": args.results_dir, "run_id": args.run_id,
        "data_dir": args.data_dir,
        "perplexity.seq_len": args.seq_len, "perplexity.max_tokens": args.max_tokens,
        "lm_eval_include_path": args.include_path, "lm_eval.num_fewshot": args.num_fewshot,
        "lm_eval.batch_size": args.batch_size, "lm_eval.log_samples": args.log_samples,
    }
    config = load_config(args.config or default_suite_path(), overrides)
    if args.dry_run:
        from lizard_bench.plan import plan_run

        plan = plan_run(config)
        print(plan.text())
        return 1 if plan.problems else 0

    from lizard_bench.report.console import noisy_warning, summary_table  # heavy imports once the config is valid
    from lizard_bench.runner import run_suite

    summary = run_suite(config, retrain=args.retrain)
    print()
    print(summary_table(summary.records))
    print(f"\n{len(summary.records)} records in {summary.run_dir} "
          f"({summary.ran_units} units run, {summary.skipped_units} already done)")
    from lizard_bench.report import write_reports

    written = write_reports([summary.run_dir], summary.run_dir / "report")
    print(f"reports: {written['report']}  leaderboard: {written['leaderboard']}")
    warning = noisy_warning(summary.records)
    if warning:
        print(f"lizard-bench: {warning}", file=sys.stderr)
    failed = [r for r in summary.records if r.status == "error"]
    if failed:
        print(f"lizard-bench: {len(failed)} record(s) failed; rerun with --run-id {summary.run_dir.name} to retry them",
              file=sys.stderr)
        return 1
    return 0


def _train(args: argparse.Namespace) -> int:
    overrides = {
        "models": args.models, "variants": args.variants, "seed": args.seed, "device": args.device,
        "dtype": args.dtype, "kernel_backend": args.kernel_backend, "results_dir": args.results_dir,
    }
    config = load_config(args.config or default_suite_path(), overrides)
    from lizard_bench.train_suite import train_suite, trained_table

    trained = train_suite(config, retrain=args.retrain)
    from accelerate import PartialState  # set up by the training: one table, from the main process

    if PartialState().is_main_process:
        print(trained_table(trained))
    return 0


def _list(args: argparse.Namespace) -> int:
    what = args.what
    if what == "tasks":
        from lizard_bench.config import SuiteConfig
        from lizard_bench.tasks import all_tasks

        config = SuiteConfig(data_dir=args.data_dir)
        if args.data_dir is not None and not Path(args.data_dir).is_dir():
            raise ConfigError(f"--data-dir {args.data_dir} is not a folder")
        for name, cls in all_tasks().items():
            status = cls().data_status(config) or "available"
            print(f"{name:28s} {cls.suite:20s} {', '.join(cls.metrics):24s} data: {status}")
        if args.include_path is not None:
            _list_included_tasks(args.include_path)
        print("any other task, group or tag lm-eval knows runs too (lm-eval's own definition and data loading)")
    elif what == "models":
        for alias, model in EMBEDDED_MODELS.items():
            print(f"{alias:16s} embedded: {model.filename} from PyPI wheel {model.distribution}=={model.version} "
                  f"(hub: {model.hub_id})")
        print("any hub id (org/name) or local directory with config.json, or a .gguf file, is accepted too")
    elif what == "suites":
        from lizard_bench.config import shipped_suites

        for name, header in shipped_suites().items():
            print(f"{name:20s} {header}")
        print("run one with: lizard-bench run --config NAME  (add --dry-run to see its plan first)")
    else:
        from lizard_bench.models.descriptions import describe_variants

        for name, description in describe_variants().items():
            print(f"{name:16s} {description}")
        print("define more under variant_options in a suite (e.g. hybrids with softmax_layers)")
    return 0


def _list_included_tasks(include_path: str) -> None:
    """The task names a folder of lm-eval YAMLs adds (lm-eval indexes its own tasks too: 10-30 s)."""
    if not Path(include_path).is_dir():
        raise ConfigError(f"--include-path {include_path} is not a folder of lm-eval task YAMLs")
    from lizard_bench.evaluation.passthrough import included_task_names

    for name in included_task_names(include_path):
        print(f"{name:28s} {'lm_eval (yours)':20s} {'(from the YAML)':24s} data: as the YAML says")


def default_suite_path() -> Path:
    """``configs/default.yaml``, shipped in the package so an installed CLI finds it too."""
    return Path(str(importlib.resources.files("lizard_bench_configs") / "default.yaml"))


def run_default_suite() -> int:
    """``python run_bench.py``: ``lizard-bench run`` (the default suite unless --config says otherwise)."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    return main(["run", *sys.argv[1:]])


if __name__ == "__main__":
    sys.exit(main())
