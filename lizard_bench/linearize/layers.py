"""Finding a decoder's attention modules and putting LizardAttention in their place.

Shared by :func:`lizard_bench.linearize.linearize` (converting a loaded teacher) and by
:class:`lizard_bench.linearize.modeling.LizardLlamaForCausalLM` (building the same layers from a
saved config), so a model converted in memory and one loaded from its directory are built alike.

Supported: Llama-family decoders (Llama, Mistral, Qwen2, and any model whose layers hold a
``self_attn`` with q/k/v/o projections and take RoPE position embeddings), grouped-query
attention included. Anything else is refused with an explanation, because a silently
mis-converted model would produce plausible-looking wrong numbers.
"""

from __future__ import annotations

from torch import nn

from lizard_bench.errors import InputError
from lizard_bench.linearize.attention import LizardAttention
from lizard_bench.linearize.config import LinearizeConfig

SUPPORTED_MODEL_TYPES = ("llama", "mistral", "qwen2", "qwen3")
_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj")


class UnsupportedModelError(InputError, ValueError):
    """The model's architecture cannot be linearized by this package."""


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The list of decoder layers of a causal LM (``model.model.layers``), or an explanatory error."""
    inner = getattr(model, "model", None)
    layers = getattr(inner, "layers", None)
    model_type = getattr(getattr(model, "config", None), "model_type", type(model).__name__)
    if not isinstance(layers, nn.ModuleList) or not layers:
        raise UnsupportedModelError(
            f"cannot linearize {model_type!r}: expected a causal LM with model.layers "
            f"(supported: {', '.join(SUPPORTED_MODEL_TYPES)} and other Llama-style decoders)"
        )
    for index, layer in enumerate(layers):
        attention = getattr(layer, "self_attn", None)
        if isinstance(attention, LizardAttention):
            raise ValueError("model is already linearized")
        missing = [name for name in _PROJECTIONS if not isinstance(getattr(attention, name, None), nn.Linear)]
        if attention is None or missing:
            raise UnsupportedModelError(
                f"cannot linearize {model_type!r}: layer {index} has no Llama-style self_attn with "
                f"{', '.join(_PROJECTIONS)} (missing: {', '.join(missing) or 'self_attn'})"
            )
    return layers


def check_linearizable(model: nn.Module, config: LinearizeConfig) -> nn.ModuleList:
    """``model``'s decoder layers, once it is known that ``config`` can linearize them (else an explanatory error)."""
    layers = decoder_layers(model)
    model_config = model.config
    if getattr(model_config, "model_type", None) not in SUPPORTED_MODEL_TYPES and not hasattr(
        model_config, "num_key_value_heads"
    ):
        raise UnsupportedModelError(f"cannot linearize {model_config.model_type!r}: not a Llama-family config")
    bad = [i for i in config.softmax_layers if not 0 <= i < len(layers)]
    if bad:
        raise ValueError(f"softmax_layers {bad} out of range: the model has {len(layers)} layers (0-based)")
    return layers


def install_lizard_attention(model: nn.Module, config: LinearizeConfig, *, kernel_backend: str | None = None) -> None:
    """Replace every attention module of ``model`` except ``config.softmax_layers`` with a LizardAttention over it."""
    layers = check_linearizable(model, config)
    model_config = model.config
    num_heads = model_config.num_attention_heads
    num_kv_heads = getattr(model_config, "num_key_value_heads", None) or num_heads
    head_dim = getattr(model_config, "head_dim", None) or model_config.hidden_size // num_heads
    reference = next(model.parameters())
    for index, layer in enumerate(layers):
        if index in config.softmax_layers:
            continue
        layer.self_attn = LizardAttention(
            layer.self_attn, config, layer_idx=index, hidden_size=model_config.hidden_size, num_heads=num_heads,
            num_kv_heads=num_kv_heads, head_dim=head_dim, kernel_backend=kernel_backend,
        ).to(device=reference.device, dtype=reference.dtype)  # a bf16 teacher gets bf16 feature maps and gates
