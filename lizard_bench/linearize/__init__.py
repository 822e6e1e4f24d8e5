"""Lizard linearization: the attention module, model conversion, training stages and checkpoints."""

from lizard_bench.linearize.attention import LizardAttention
from lizard_bench.linearize.cache import LizardCacheLayer, cache_bytes
from lizard_bench.linearize.config import METHODS, LinearizeConfig, method_config
from lizard_bench.linearize.convert import UnsupportedModelError, linearize, lizard_modules, lizard_parameters

__all__ = [
    "METHODS",
    "LinearizeConfig",
    "LizardAttention",
    "LizardCacheLayer",
    "UnsupportedModelError",
    "cache_bytes",
    "linearize",
    "lizard_modules",
    "lizard_parameters",
    "method_config",
]
