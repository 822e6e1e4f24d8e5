"""A delta checkpoint plus its base model, written as one ordinary Hugging Face model directory.

Why: a checkpoint holds only what training added and loads only through
:func:`~lizard_bench.linearize.checkpoint.load_linearized`, onto the exact base weights it was
trained on. Tools that know nothing of lizard-bench (lm-eval's own CLI, ``from_pretrained``)
need the whole model in one folder, with its code: that is what this writes. The checkpoint
itself stays as it is, small and bound to its base.
"""

from __future__ import annotations

from pathlib import Path

from lizard_bench.linearize.checkpoint import CheckpointError, check_checkpoint_files, load_linearized, read_manifest
from lizard_bench.linearize.modeling import LizardLlamaForCausalLM
from lizard_bench.models.loading import DTYPES, load_model


def export_checkpoint(
    checkpoint_dir: Path, out: Path, *, model: str | None = None, dtype: str = "float32", save_dtype: str | None = None,
    device: str = "cpu",
) -> Path:
    """Load ``model`` (default: the base the manifest names) in ``dtype``, apply the checkpoint, save it to ``out``.

    The base must hash as the checkpoint's (same weights *and* dtype: training's, float32 by
    default); stage-2 adapters are merged. ``save_dtype`` casts the whole model before saving.
    """
    checkpoint_dir, out = Path(checkpoint_dir), Path(out)
    manifest = read_manifest(checkpoint_dir)
    if manifest is None:
        raise CheckpointError(f"{checkpoint_dir}: not a linearized checkpoint (no readable manifest.json)")
    check_checkpoint_files(checkpoint_dir, manifest)  # before the base model loads: a damaged file costs no time
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise CheckpointError(f"--out {out} exists and is not an empty directory")
    loaded = load_model(model or manifest["base_model"]["name"], device=device, dtype=dtype)
    load_linearized(loaded.model, checkpoint_dir, merge=True)
    if not isinstance(loaded.model, LizardLlamaForCausalLM):
        raise CheckpointError(f"{checkpoint_dir}: its base is a {loaded.model.config.model_type!r} model; only Llama "
                              "models (model_type 'llama') can be written as a model directory so far")
    if save_dtype is not None:
        loaded.model.to(DTYPES[save_dtype])
    loaded.model.save_pretrained(out)
    loaded.tokenizer.save_pretrained(out)
    return out
