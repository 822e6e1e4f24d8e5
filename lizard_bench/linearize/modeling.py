"""A linearized Llama as an ordinary transformers architecture, model type ``lizard_llama``.

Why: a linearized model saved with ``save_pretrained`` must come back from
``AutoModelForCausalLM.from_pretrained`` with the same logits — in lm-eval's own CLI, in a
process without lizard_bench — and never as a plain Llama that re-initialises q/k/v/o at random
and ignores what linearization added. So the config has its own model type and carries the
:class:`LinearizeConfig` (``lizard``), the model class builds the Llama and then the same
LizardAttention layers :func:`lizard_bench.linearize.linearize` installs, and loading is strict.

This module is the entry point of the code a saved directory carries (``auto_map`` in its
config.json; see :mod:`lizard_bench.linearize.remote_code`), so it imports only torch,
transformers and lizard_bench modules that are shipped with it.
"""

from __future__ import annotations

import os
from typing import Any

from transformers import LlamaConfig, LlamaForCausalLM

from lizard_bench.errors import InputError
from lizard_bench.linearize.config import LinearizeConfig
from lizard_bench.linearize.layers import install_lizard_attention

MODEL_TYPE = "lizard_llama"


class LizardDirectoryError(InputError, ValueError):
    """A model directory whose config or weights do not describe a complete linearized model."""


class LizardLlamaConfig(LlamaConfig):
    """A Llama config plus ``lizard``, the :class:`LinearizeConfig` of its linearized layers (as a dict)."""

    model_type = MODEL_TYPE
    lizard: dict[str, Any] | None = None

    def linearize_config(self) -> LinearizeConfig:
        """The validated :class:`LinearizeConfig` that built these layers, or a one-line error."""
        if not self.lizard:
            raise LizardDirectoryError(f"a {MODEL_TYPE} config needs a 'lizard' section (the LinearizeConfig)")
        try:
            config = LinearizeConfig.from_dict(self.lizard)
        except ValueError as error:
            raise LizardDirectoryError(f"config.json 'lizard' section: {error}") from None
        return config


class LizardLlamaForCausalLM(LlamaForCausalLM):
    """LlamaForCausalLM whose attention layers are the ones ``config.lizard`` describes."""

    config_class = LizardLlamaConfig

    def __init__(self, config: LizardLlamaConfig) -> None:
        super().__init__(config)
        install_lizard_attention(self, config.linearize_config())

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, *model_args: Any, **kwargs: Any):
        """transformers' loading, made strict: a missing, unexpected or mis-shaped tensor is an error.

        transformers would initialise a missing tensor at random and warn; for a linearized
        model that yields a working model with wrong numbers, so it is refused in one line.
        Mismatched shapes are let through transformers (``ignore_mismatched_sizes``) only to be
        reported here with the rest.
        """
        wants_info = kwargs.pop("output_loading_info", False)
        kwargs["ignore_mismatched_sizes"] = True
        model, info = super().from_pretrained(pretrained_model_name_or_path, *model_args, output_loading_info=True,
                                              **kwargs)
        problems = [f"{name} is missing" for name in sorted(info["missing_keys"])]
        problems += [f"{name} is not part of the model" for name in sorted(info["unexpected_keys"])]
        problems += [f"{name} has shape {tuple(saved)}, the config needs {tuple(needed)}"
                     for name, saved, needed in sorted(info["mismatched_keys"])]
        if problems:
            raise LizardDirectoryError(
                f"{pretrained_model_name_or_path}: the weights do not fit its {MODEL_TYPE} config "
                f"({len(problems)} problem(s); first: {problems[0]}); refusing to initialise any at random"
            )
        return (model, info) if wants_info else model

    def save_pretrained(self, save_directory: str | os.PathLike, *args: Any, **kwargs: Any) -> None:
        """Save weights and config, and the model code beside them (``auto_map``), so the directory loads anywhere.

        A model loaded from a directory's own code (``trust_remote_code``) has ``_auto_class``
        set, and transformers copies that code into the new directory itself.
        """
        if self._auto_class is not None:
            super().save_pretrained(save_directory, *args, **kwargs)
            return
        from lizard_bench.linearize.remote_code import AUTO_MAP, write_model_code

        self.config.auto_map = dict(AUTO_MAP)
        super().save_pretrained(save_directory, *args, **kwargs)
        if kwargs.get("is_main_process", True):
            write_model_code(save_directory)


def adopt_lizard_classes(model: Any) -> None:
    """Make a just-linearized LlamaForCausalLM a :class:`LizardLlamaForCausalLM` (its config too), in place.

    Its layers are already the ones the class builds, so only the class changes: what
    ``save_pretrained`` then writes loads back as this model. Other architectures keep their
    class (only Llama has a directory format so far).
    """
    if type(model) is LlamaForCausalLM and type(model.config) is LlamaConfig:
        model.config.__class__ = LizardLlamaConfig
        model.__class__ = LizardLlamaForCausalLM
