"""``lizard-bench export-data``: the command line side of :mod:`lizard_bench.evaluation.export`.

``add_subcommands`` adds the command to the main parser's subcommands; each sets ``handler``.
User errors are :class:`ExportError` (a ValueError) with a one-line message.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from lizard_bench.evaluation.catalog import SUITES, expand_task_names
from lizard_bench.evaluation.export import ExportError, export_task


def add_subcommands(commands: argparse._SubParsersAction) -> None:
    export = commands.add_parser(
        "export-data",
        help="write GLUE/SuperGLUE/paper task data from the hub as JSONL, for --data-dir on an offline machine",
        description="Download each task's evaluation splits with `datasets` and write DIR/<task>/<split>.jsonl "
                    "(original field names, lm-eval's split names). Needs the Hugging Face hub.",
    )
    export.add_argument("--out", type=Path, required=True, help="folder to write (pass it later as --data-dir)")
    export.add_argument("--tasks", action="append", metavar="NAMES",
                        help=f"task names or suites ({', '.join(SUITES)}), comma-separated or repeated; default: all")
    export.add_argument("--with-fewshot-splits", action="store_true",
                        help="also export the split few-shot examples are drawn from (e.g. GLUE's train split)")
    export.set_defaults(handler=run_export)


def run_export(args: argparse.Namespace) -> int:
    try:
        specs = expand_task_names(args.tasks)
    except KeyError as exc:
        raise ExportError(exc.args[0]) from None
    if args.out.exists() and not args.out.is_dir():
        raise ExportError(f"--out {args.out} exists and is not a directory")
    for spec in specs:
        exported = export_task(spec, args.out, with_fewshot=args.with_fewshot_splits)
        splits = ", ".join(f"{split} ({rows} rows)" for split, rows in exported.rows.items())
        print(f"{spec.name:16s} {splits} -> {exported.folder}")
    print(f"\nwrote {len(specs)} task(s) to {args.out}; on the offline machine run: "
          f"lizard-bench run --data-dir {args.out} ...")
    return 0
