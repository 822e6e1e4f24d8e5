"""Lizard linearization: the attention module, model conversion, training stages and checkpoints.

Importing this package registers the ``lizard_llama`` architecture with transformers' Auto
classes, so a saved linearized directory loads natively, without ``trust_remote_code``.
"""

from transformers import AutoConfig, AutoModelForCausalLM

from lizard_bench.linearize.attention import LizardAttention
from lizard_bench.linearize.cache import LizardCacheLayer, cache_bytes
from lizard_bench.linearize.config import METHODS, LinearizeConfig, method_config
from lizard_bench.linearize.convert import UnsupportedModelError, linearize, lizard_modules, lizard_parameters
from lizard_bench.linearize.modeling import MODEL_TYPE, LizardDirectoryError, LizardLlamaConfig, LizardLlamaForCausalLM

AutoConfig.register(MODEL_TYPE, LizardLlamaConfig, exist_ok=True)
AutoModelForCausalLM.register(LizardLlamaConfig, LizardLlamaForCausalLM, exist_ok=True)

__all__ = [
    "METHODS",
    "LinearizeConfig",
    "LizardAttention",
    "LizardCacheLayer",
    "LizardDirectoryError",
    "LizardLlamaConfig",
    "LizardLlamaForCausalLM",
    "UnsupportedModelError",
    "cache_bytes",
    "linearize",
    "lizard_modules",
    "lizard_parameters",
    "method_config",
]
