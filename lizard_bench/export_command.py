"""``lizard-bench export``: the command line side of :mod:`lizard_bench.linearize.export`.

It lives outside ``lizard_bench.linearize`` because importing that package loads torch and
transformers (it registers the model classes), which ``lizard-bench --help`` should not wait for.

``add_subcommands`` adds the command to the main parser's subcommands and sets ``handler``.
User errors are :class:`~lizard_bench.linearize.checkpoint.CheckpointError` (a ValueError), one line.
"""

from __future__ import annotations

import argparse
from pathlib import Path

DTYPE_NAMES = ("float32", "float16", "bfloat16")  # models.loading.DTYPES' keys, without importing torch here


def add_subcommands(commands: argparse._SubParsersAction) -> None:
    export = commands.add_parser(
        "export", help="write a linearized checkpoint and its base model as one Hugging Face model directory",
        description="Apply a checkpoint (results/checkpoints/<model>/<variant>/) to its base model and save the "
                    "result as a model directory that AutoModelForCausalLM.from_pretrained(DIR, trust_remote_code="
                    "True) and lm_eval --model hf load, with or without lizard-bench installed.",
    )
    export.add_argument("--checkpoint", type=Path, required=True, help="checkpoint folder (holds manifest.json)")
    export.add_argument("--out", type=Path, required=True, help="model directory to write (new or empty)")
    export.add_argument("--model", help="base model: embedded alias, hub id or local dir (default: the manifest's)")
    export.add_argument("--dtype", choices=DTYPE_NAMES, default="float32",
                        help="dtype to load the base in: the one it was trained in (default float32)")
    export.add_argument("--save-dtype", choices=DTYPE_NAMES, help="cast the model to this dtype before saving")
    export.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N (default cpu)")
    export.set_defaults(handler=run_export)


def run_export(args: argparse.Namespace) -> int:
    from lizard_bench.linearize.export import export_checkpoint

    out = export_checkpoint(args.checkpoint, args.out, model=args.model, dtype=args.dtype, save_dtype=args.save_dtype,
                            device=args.device)
    print(f"wrote {out}: load it with AutoModelForCausalLM.from_pretrained({str(out)!r}, trust_remote_code=True) "
          f"and AutoTokenizer.from_pretrained({str(out)!r}, trust_remote_code=True) (without the argument "
          "transformers asks at a terminal), or lm_eval --model hf --model_args "
          f"pretrained={out},trust_remote_code=True")
    return 0
