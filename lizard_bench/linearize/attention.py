"""LizardAttention: the teacher's projections feeding a gated linear branch and a windowed softmax.

ŷ_i = ŷ^gla_i + α · ŷ^win_i (DESIGN §2), each branch normalised on its own:
- global: gated linear attention over Hedgehog features of q and k, no RoPE (the gate
  carries position, which is what lets it extrapolate);
- local: softmax over the last w keys plus m meta-memory logits in the normaliser.
With ``combine='shared'`` the two share one normaliser and the linear branch covers only
keys that have left the window (the LoLCATs-style baseline).

All attention arithmetic goes through :mod:`lizard_bench.kernels`, the same code the
teacher runs on. In distillation mode the module also runs the teacher's own attention on
the same input, stores the MSE between the two outputs, and passes the *teacher's* output
on, so one forward pass yields every layer's input and target (stage 1).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lizard_bench.kernels import gated_linear_attention, softmax_attention
from lizard_bench.linearize.cache import LizardCacheLayer, lizard_layer
from lizard_bench.linearize.config import LinearizeConfig
from lizard_bench.linearize.feature_maps import HedgehogFeatureMap
from lizard_bench.linearize.gates import build_gate
from lizard_bench.models.masks import ensure_plain_causal


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    first, second = x.chunk(2, dim=-1)
    return torch.cat([-second, first], dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """RoPE on [B, T, H, D] with the model's cos/sin [B, T, D] (the rotate-half convention of Llama)."""
    cos, sin = cos[:, :, None, :].to(x.dtype), sin[:, :, None, :].to(x.dtype)
    return x * cos + rotate_half(x) * sin


def repeat_kv(x: torch.Tensor, groups: int) -> torch.Tensor:
    """[B, T, Hkv, D] -> [B, T, Hkv * groups, D] (query head h reads KV head h // groups)."""
    return x if groups == 1 else x.repeat_interleave(groups, dim=2)


class LizardAttention(nn.Module):
    """Drop-in replacement for a Llama-family attention module (same forward signature and outputs)."""

    def __init__(
        self, base: nn.Module, config: LinearizeConfig, *, layer_idx: int, hidden_size: int, num_heads: int,
        num_kv_heads: int, head_dim: int, kernel_backend: str | None = None,
    ) -> None:
        super().__init__()
        self.base = base  # the teacher's attention: its q/k/v/o projections are reused, not copied
        self.config = config
        self.layer_idx = layer_idx
        self.num_heads, self.num_kv_heads, self.head_dim = num_heads, num_kv_heads, head_dim
        self.groups = num_heads // num_kv_heads
        self.kernel_backend = kernel_backend
        self.distill = False
        self.distill_loss: torch.Tensor | None = None
        # set in stage 1 under FSDP2: back-propagate this layer's MSE x scale inside its own forward
        self.distill_backward_scale: float | None = None

        if config.linear_branch:
            self.feature_q = HedgehogFeatureMap(num_heads, head_dim, config.feature_dim)
            self.feature_k = HedgehogFeatureMap(num_heads, head_dim, config.feature_dim)
            self.gate = build_gate(config.gate, hidden_size, num_heads, config.gate_rank, config.gate_temperature)
        if config.window and config.num_sinks:
            self.sink_logits = nn.Parameter(torch.zeros(num_heads, config.num_sinks))
        if config.window and config.linear_branch and config.combine == "separate":
            self.alpha = nn.Parameter(torch.full((num_heads,), config.alpha_init))

    # -- transformers interface -------------------------------------------------------------
    def forward(
        self,
        hidden_states: torch.Tensor,
        position_embeddings: tuple[torch.Tensor, torch.Tensor] | None = None,
        attention_mask: torch.Tensor | None = None,
        cache=None,
        past_key_values=None,
        **kwargs,
    ) -> tuple[torch.Tensor, None]:
        cache = cache if cache is not None else past_key_values
        ensure_plain_causal(attention_mask, hidden_states.shape[1])
        if not self.distill:
            state = lizard_layer(cache, self.layer_idx) if cache is not None else None
            return self.attend(hidden_states, position_embeddings, state), None
        with torch.no_grad():
            target, _ = self.base(hidden_states, position_embeddings=position_embeddings,
                                  attention_mask=attention_mask, cache=None, **kwargs)
        output = self.attend(hidden_states, position_embeddings, None)
        loss = F.mse_loss(output.float(), target.float())
        if self.distill_backward_scale is not None and loss.requires_grad:
            # now, while FSDP2 still holds this layer's gathered weights (o_proj is on the loss's path);
            # the layers' losses are independent, so this equals one backward of the mean afterwards
            trainable = [parameter for parameter in self.parameters() if parameter.requires_grad]
            torch.autograd.backward(loss * self.distill_backward_scale, inputs=trainable)
            loss = loss.detach()
        self.distill_loss = loss
        return target, None

    # -- the method ----------------------------------------------------------------------------
    def attend(self, x: torch.Tensor, position_embeddings, state: LizardCacheLayer | None) -> torch.Tensor:
        """x [B, T, d_model] -> attention output after o_proj [B, T, d_model]; advances ``state`` if given."""
        B, T, _ = x.shape
        q = self.base.q_proj(x).view(B, T, self.num_heads, self.head_dim)
        k = self.base.k_proj(x).view(B, T, self.num_kv_heads, self.head_dim)
        v = self.base.v_proj(x).view(B, T, self.num_kv_heads, self.head_dim)
        if self.config.combine == "shared":
            out = self._shared_normaliser(x, q, k, v, position_embeddings, state)
        else:
            out = self._separate_branches(x, q, k, v, position_embeddings, state)
        if state is not None:
            state.seen += T
        return self.base.o_proj(out.reshape(B, T, -1).to(x.dtype))

    def _separate_branches(self, x, q, k, v, position_embeddings, state) -> torch.Tensor:
        out = None
        if self.config.linear_branch:
            out = self._linear(q, repeat_kv(k, self.groups), repeat_kv(v, self.groups), self.gate(x), state)
        if self.config.window:
            window_out, _ = self._window(q, k, v, position_embeddings, state, keep=self.config.window - 1)
            out = window_out if out is None else out + self.alpha.view(1, 1, -1, 1).to(out.dtype) * window_out
        return out

    def _linear(self, q, k, v, log_gate, state, initial=None) -> torch.Tensor:
        """Gated linear attention over Hedgehog features (k, v already broadcast to query heads)."""
        dtype = v.dtype
        out, final = gated_linear_attention(
            self.feature_q(q).to(dtype), self.feature_k(k).to(dtype), v, log_gate,
            initial_state=state.gla if state is not None else initial,
            output_final_state=state is not None, eps=self.config.eps, backend=self.kernel_backend,
        )
        if state is not None:
            state.gla = final
        return out

    def _window(self, q, k, v, position_embeddings, state, keep: int, return_lse: bool = False):
        """Softmax over the last w keys (+ sinks). Keys/values before this call come from ``state``."""
        if self.config.window_rope:
            cos, sin = position_embeddings
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if state is not None:
            k, v = state.extend("k", k, keep), state.extend("v", v, keep)
        sinks = getattr(self, "sink_logits", None)
        result = softmax_attention(q, k, v, causal=True, window=self.config.window, sink_logits=sinks,
                                   backend=self.kernel_backend, return_lse=return_lse)
        return result if return_lse else (result, None)

    def _shared_normaliser(self, x, q, k, v, position_embeddings, state) -> torch.Tensor:
        """LoLCATs-style: softmax over the window and linear attention over older keys, one normaliser.

        Key j reaches the linear branch when it leaves query i's window (j <= i - w). Shifting the
        key/value stream right by w positions turns that into an ordinary causal linear
        attention; the shift's first positions come from the buffered keys (decoding) or are
        empty (zero features contribute nothing).
        """
        B, T, _, _ = q.shape
        w = self.config.window
        buffered = 0 if state is None or "k_raw" not in state.buffers else state.buffers["k_raw"].shape[1]
        raw_k = k if state is None else state.extend("k_raw", k, keep=w)
        raw_v = v if state is None else state.extend("v_raw", v, keep=w)
        pad = w - buffered
        stream_k = F.pad(raw_k, (0, 0, 0, 0, pad, 0))[:, :T]  # key i - w for query i (zeros before the start)
        stream_v = F.pad(raw_v, (0, 0, 0, 0, pad, 0))[:, :T]
        present = (torch.arange(T, device=q.device) >= pad).view(1, T, 1, 1)
        features_k = self.feature_k(repeat_kv(stream_k, self.groups)) * present
        features_q = self.feature_q(q)
        stream_v = repeat_kv(stream_v, self.groups) * present
        no_decay = torch.zeros(B, T, self.num_heads, device=q.device, dtype=torch.float32)

        previous_z = state.gla.z if state is not None and state.gla is not None else None
        linear_out, final = gated_linear_attention(
            features_q.to(v.dtype), features_k.to(v.dtype), stream_v, no_decay,
            initial_state=state.gla if state is not None else None, output_final_state=state is not None,
            eps=self.config.eps, backend=self.kernel_backend,
        )
        if state is not None:
            state.gla = final
        z = features_k.float().cumsum(dim=1)
        if previous_z is not None:
            z = z + previous_z[:, None]
        linear_den = torch.einsum("bthf,bthf->bth", features_q.float(), z)
        linear_num = linear_out.float() * (linear_den + self.config.eps)[..., None]

        window_out, lse = self._window(q, k, v, position_embeddings, state, keep=w - 1, return_lse=True)
        # one normaliser: (e^lse · ŷ_win + num) / (e^lse + den), scaled by e^-m so nothing overflows
        m = torch.maximum(lse, torch.log(linear_den.clamp_min(torch.finfo(torch.float32).tiny)))
        window_weight, linear_weight = torch.exp(lse - m), torch.exp(-m)
        numerator = window_weight[..., None] * window_out.float() + linear_weight[..., None] * linear_num
        return numerator / (window_weight + linear_weight * linear_den)[..., None]
