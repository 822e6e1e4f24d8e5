"""Load saved model directories the way a machine without lizard-bench would (run as a script).

Run as ``python -I tests/fresh_process.py DIR REFERENCE.pt [DIR REFERENCE.pt ...]`` in a fresh
process: a meta-path blocker makes ``lizard_bench`` (and this test package) unimportable, so
all the model needs must come from the directory's own code through ``trust_remote_code``.
``REFERENCE.pt`` holds ``input_ids`` and the ``logits`` the saving process computed. Prints one
JSON object per directory: the loaded class and dtype, max |Δlogits|, or the error's one line.
"""

from __future__ import annotations

import json
import sys

BLOCKED = ("lizard_bench", "tests")


class _Blocker:
    """A meta-path finder that refuses the blocked packages before any other finder is asked."""

    @staticmethod
    def find_spec(name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"{name} is blocked in this process")
        return None


def load(directory: str, reference_file: str) -> dict:
    import torch
    from transformers import AutoModelForCausalLM

    reference = torch.load(reference_file)
    try:
        model = AutoModelForCausalLM.from_pretrained(directory, trust_remote_code=True)
    except Exception as error:  # reported, for the test to judge
        return {"error": f"{type(error).__name__}: {error}"}
    with torch.no_grad():
        logits = model(input_ids=reference["input_ids"], use_cache=False).logits
    return {"class": f"{type(model).__module__}.{type(model).__name__}", "dtype": str(model.dtype),
            "max_abs_diff": (logits.float() - reference["logits"].float()).abs().max().item()}


def main(arguments: list[str]) -> None:
    sys.meta_path.insert(0, _Blocker)
    for directory, reference_file in zip(arguments[::2], arguments[1::2], strict=True):
        result = load(directory, reference_file)
        result["blocked_imported"] = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
