"""LizardAttention: the teacher's projections feeding a gated linear branch and a windowed softmax.

Four readings of how the branches combine (``LinearizeConfig.combine``, docs/design.md):
- ``separate``: ŷ = ŷ_gla + α · ŷ_win, each branch normalised on its own;
- ``unnormalised``: ŷ = s · φ_qᵀS + α · ŷ_win, the GLA without its denominator;
- ``convex``: ŷ = ŷ_win + π · ŷ_gla, π the meta-memory sinks' share of the window's softmax;
- ``shared``: one normaliser over window scores and linear scores of older keys (LoLCATs).
The branches themselves:
- global: gated linear attention over Hedgehog features of q and k, no RoPE (the gate
  carries position, which is what lets it extrapolate);
- local: softmax over the last w keys (and, as an extension, the first m "anchor" tokens)
  plus m meta-memory logits in the normaliser (as an extension, with learned values).

All attention arithmetic goes through :mod:`lizard_bench.kernels`, the same code the
teacher runs on. Padded batches (left, right or anywhere) give each real token what it gets
unpadded: each row's pads are moved first (``linearize/padding.py``), pads add nothing to the
GLA state (zero features, log-gate 0), the window and the sinks' normaliser skip pad keys
(the kernels' key mask), anchors are a row's first m *real* tokens, and pad rows output 0.

In distillation mode the module also runs the teacher's own attention on the same input,
stores the MSE between the two outputs, and passes the *teacher's* output on, so one
forward pass yields every layer's input and target (stage 1).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from lizard_bench.kernels import gated_linear_attention, gated_linear_attention_step, softmax_attention
from lizard_bench.linearize.cache import LizardCacheLayer, lizard_layer, owned
from lizard_bench.linearize.config import LinearizeConfig
from lizard_bench.linearize.decode_step import decode_step, every_anchor_past_window, takes_fast_step
from lizard_bench.linearize.feature_maps import HedgehogFeatureMap
from lizard_bench.linearize.gates import build_gate
from lizard_bench.linearize.heads import apply_rope_pair, repeat_kv
from lizard_bench.linearize.padding import pads_first, real_positions, reals_first, restore, take
from lizard_bench.models.masks import key_padding


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
        # stage 1 option: match the heads' mixed output (o_proj's input) instead of o_proj's output
        self.distill_before_o_proj = False
        self._o_proj_input: torch.Tensor | None = None
        self._last_mixed: torch.Tensor | None = None

        if config.linear_branch:
            identity = config.feature_init == "identity"
            self.feature_q = HedgehogFeatureMap(num_heads, head_dim, config.feature_dim, identity=identity)
            self.feature_k = HedgehogFeatureMap(num_heads, head_dim, config.feature_dim, identity=identity)
            self.gate = build_gate(config.gate, hidden_size, num_heads, config.gate_rank, config.gate_temperature,
                                   bias=config.gate_bias_range())
            if config.combine == "unnormalised":
                self.gla_log_scale = nn.Parameter(torch.full((num_heads,), math.log(config.gla_scale_init)))
        if config.window and config.num_sinks:
            start = 0.0 if config.sink_init == "teacher" else float(config.sink_init)  # 'teacher': set in training
            self.sink_logits = nn.Parameter(torch.full((num_heads, config.num_sinks), start))
            if config.sink_values != "none":
                self.sink_values = nn.Parameter(torch.zeros(num_heads, config.num_sinks, head_dim))
        if config.window and config.linear_branch and config.combine in ("separate", "unnormalised"):
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
        T = hidden_states.shape[1]
        real = key_padding(attention_mask, T)
        real = real[:, -T:] if real is not None else None
        if not self.distill:
            chunk_mask = not self.config.softmax_layers  # no softmax layer needs the earlier keys' mask
            state = lizard_layer(cache, self.layer_idx, chunk_mask) if cache is not None else None
            if takes_fast_step(self, T, state, real):
                return self.base.o_proj(decode_step(self, hidden_states, position_embeddings, state)), None
            return self.attend(hidden_states, position_embeddings, state, real), None
        hook = None
        if self.distill_before_o_proj:
            hook = self.base.o_proj.register_forward_pre_hook(self._keep_o_proj_input)
        try:
            with torch.no_grad():
                target, _ = self.base(hidden_states, position_embeddings=position_embeddings,
                                      attention_mask=attention_mask, cache=None, **kwargs)
        finally:
            if hook is not None:
                hook.remove()
        output = self.attend(hidden_states, position_embeddings, None, real)
        if self.distill_before_o_proj:
            target, output = self._o_proj_input, self._last_mixed
            self._o_proj_input = self._last_mixed = None
        loss = F.mse_loss(output.float(), target.float())
        if self.distill_backward_scale is not None and loss.requires_grad:
            # now, while FSDP2 still holds this layer's gathered weights (o_proj is on the loss's path);
            # the layers' losses are independent, so this equals one backward of the mean afterwards
            trainable = [parameter for parameter in self.parameters() if parameter.requires_grad]
            torch.autograd.backward(loss * self.distill_backward_scale, inputs=trainable)
            loss = loss.detach()
        self.distill_loss = loss
        return target, None

    def _keep_o_proj_input(self, module: nn.Module, args: tuple) -> None:
        self._o_proj_input = args[0].detach()

    # -- the method ----------------------------------------------------------------------------
    def attend(
        self, x: torch.Tensor, position_embeddings, state: LizardCacheLayer | None, real: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x [B, T, d_model] -> attention output after o_proj [B, T, d_model]; advances ``state`` if given.

        ``real`` [B, T] bool marks the chunk's real tokens (None: no padding).
        """
        B, T, _ = x.shape
        q, k, v = self.project(x)
        shared = self.config.combine == "shared"
        log_gate = self.gate(x) if self.config.linear_branch and not shared else None
        order = None
        if real is not None:  # each row's pads first: a window over the last keys then holds real keys only
            order = pads_first(real)
            q, k, v, real = take(q, order), take(k, order), take(v, order), take(real, order)
            log_gate = take(log_gate, order).masked_fill(~real[..., None], 0.0) if log_gate is not None else None
            if position_embeddings is not None:
                position_embeddings = tuple(take(t.expand(B, *t.shape[1:]), order) for t in position_embeddings)
        if shared:
            out = self._shared_normaliser(q, k, v, position_embeddings, state, real)
        else:
            out = self._two_branches(q, k, v, log_gate, position_embeddings, state, real)
        if order is not None:  # back to the caller's positions; pad rows output 0
            out = restore(out.masked_fill(~real[..., None, None], 0.0), order)
        if state is not None:
            state.count_real(real, T)
            state.seen += T
        mixed = out.reshape(B, T, -1).to(x.dtype)
        if self.distill and self.distill_before_o_proj:
            self._last_mixed = mixed
        return self.base.o_proj(mixed)

    def project(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The teacher's projections: q [B, T, H, D], k and v [B, T, Hkv, D] (before RoPE)."""
        B, T, _ = x.shape
        q = self.base.q_proj(x).view(B, T, self.num_heads, self.head_dim)
        k = self.base.k_proj(x).view(B, T, self.num_kv_heads, self.head_dim)
        v = self.base.v_proj(x).view(B, T, self.num_kv_heads, self.head_dim)
        return q, k, v

    def _two_branches(self, q, k, v, log_gate, position_embeddings, state, real) -> torch.Tensor:
        """The 'separate', 'unnormalised' and 'convex' readings (and the no-window / no-linear ablations)."""
        combine = self.config.combine
        linear = None
        if self.config.linear_branch:
            # k is repeated for the per-query-head feature map; v stays grouped (the kernels broadcast it)
            linear = self._linear(q, repeat_kv(k, self.groups), v, log_gate, state,
                                  normalize=combine != "unnormalised", real=real)
            if combine == "unnormalised":
                linear = linear * self.gla_log_scale.exp().view(1, 1, -1, 1).to(linear.dtype)
        if not self.config.window:
            return linear
        window_out, lse = self._window(q, k, v, position_embeddings, state, keep=self.config.window - 1,
                                       return_lse=combine == "convex" or hasattr(self, "sink_values"), real=real)
        if hasattr(self, "sink_values"):  # Σ_r (e^{t_r} / Z) u_r: each sink's share times its value
            share = torch.exp(self.sink_logits.float().view(1, 1, *self.sink_logits.shape) - lse[..., None])
            carried = torch.einsum("bthr,hrd->bthd", share, self.sink_values.float())
            window_out = window_out + carried.to(window_out.dtype)
        if linear is None:
            return window_out
        if combine == "convex":
            sinks_share = torch.exp(self._sinks_log_total() - lse)  # [B, T, H]
            return window_out + sinks_share[..., None].to(linear.dtype) * linear
        return linear + self.alpha.view(1, 1, -1, 1).to(linear.dtype) * window_out

    def _sinks_log_total(self) -> torch.Tensor:
        """log Σ_r e^{t_r} per head [H], float32; outside autograd kept until the sink logits change.

        Why: it is a constant between optimizer steps, and decoding would recompute it in every layer per token.
        """
        logits = self.sink_logits
        if torch.is_grad_enabled():
            return torch.logsumexp(logits.float(), dim=-1)
        key = (logits.data_ptr(), logits._version, logits.dtype, logits.device)
        if getattr(self, "_sinks_key", None) != key:
            self._sinks_key, self._sinks_total = key, torch.logsumexp(logits.float(), dim=-1)
        return self._sinks_total

    def _linear(self, q, k, v, log_gate, state, initial=None, normalize: bool = True, real=None) -> torch.Tensor:
        """Gated linear attention over Hedgehog features (k already broadcast to query heads, v [B, T, Hkv, D]).

        Pad keys get zero features (and, from :meth:`attend`, log-gate 0): they leave the state as it was.
        """
        dtype = v.dtype
        features_k = self.feature_k(k)
        if real is not None:
            features_k = features_k.masked_fill(~real[..., None, None], 0.0)
        if state is not None and state.gla is not None and q.shape[1] == 1 and not torch.is_grad_enabled():
            # a decode step: the recurrence itself, updating the held state in place (no chunk machinery,
            # no new state per token); a pad token has zero features and log-gate 0, so it changes nothing
            out, state.gla = gated_linear_attention_step(
                self.feature_q(q)[:, 0].to(dtype), features_k[:, 0].to(dtype), v[:, 0], log_gate[:, 0], state.gla,
                eps=self.config.eps, normalize=normalize, in_place=True,
            )
            return out.unsqueeze(1)
        out, final = gated_linear_attention(
            self.feature_q(q).to(dtype), features_k.to(dtype), v, log_gate,
            initial_state=state.gla if state is not None else initial,
            output_final_state=state is not None, eps=self.config.eps, normalize=normalize,
            backend=self.kernel_backend,
        )
        if state is not None:
            state.gla = final
        return out

    def _window(self, q, k, v, position_embeddings, state, keep: int, return_lse: bool = False, real=None):
        """Softmax over the last w keys, the anchors and the sinks: (out, lse or None).

        Keys/values before this call come from ``state``; ``lse`` [B, T, H] is the log of
        each row's normaliser (float32). With padding (``real``, pads first) the buffered and
        new keys are joined pads first too, and pad keys are masked.
        """
        if self.config.window_rope:
            cos, sin = position_embeddings
            q, k = apply_rope_pair(q, k, cos, sin)
        anchors = self._anchors(k, v, state, real) if self.config.num_anchors else None
        key_real = real
        if state is not None:
            (k, v), key_real = state.extend_window(("k", "v"), (k, v), keep, real, group="kv")
        sinks = getattr(self, "sink_logits", None)
        window = self.config.window
        if anchors is not None and self._every_anchor_visible(q, state, key_real, anchors[2]):
            # one query past the first w + m tokens sees every anchor and every window key: one softmax over
            # both (their order does not matter to a single query) instead of a second softmax and a merge
            k, v = torch.cat([anchors[0], k], dim=1), torch.cat([anchors[1], v], dim=1)
            window, anchors = None, None
        result = softmax_attention(q, k, v, causal=True, window=window, sink_logits=sinks,
                                   backend=self.kernel_backend, return_lse=return_lse or anchors is not None,
                                   key_mask=key_real)
        out, lse = result if isinstance(result, tuple) else (result, None)
        if anchors is not None:
            out, lse = self._merge_anchors(q, out, lse, *anchors, position=self._query_positions(q, state, real))
        return out, (lse if return_lse else None)

    def _every_anchor_visible(self, q, state, key_real, anchor_real) -> bool:
        """A decode step without padding at real position p >= w + m - 1: anchor a is seen once a <= p - w."""
        return (q.shape[1] == 1 and state is not None and key_real is None and anchor_real is None
                and every_anchor_past_window(self.config, state.seen))

    @staticmethod
    def _query_positions(q, state, real) -> torch.Tensor:
        """[B, T] index of each query among its row's real tokens (pads: -1)."""
        B, T = q.shape[:2]
        before = state.real_seen(B, q.device) if state is not None else torch.zeros(B, dtype=torch.long,
                                                                                       device=q.device)
        if real is None:
            return before[:, None] + torch.arange(T, device=q.device)
        return real_positions(real, before)

    def _anchors(self, k, v, state, real) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Keys/values of each row's first m real tokens ([B, ≤ m, Hkv, D]) and which are there yet ([B, ≤ m]
        bool, None = all); kept in ``state`` when decoding."""
        m = self.config.num_anchors
        held_real = state.buffers.get("anchor_real") if state is not None else None
        if real is None and held_real is None:  # no padding: the first m positions
            if state is None:
                return k[:, :m], v[:, :m], None
            missing = max(0, m - state.seen)
            for name, new in (("anchor_k", k), ("anchor_v", v)):
                held = state.buffers.get(name)
                if missing:
                    joined = new[:, :missing] if held is None else torch.cat([held, new[:, :missing]], dim=1)
                    state.buffers[name] = owned(joined)
            return state.buffers["anchor_k"], state.buffers["anchor_v"], None
        B, T = k.shape[:2]
        if real is None:
            real = torch.ones(B, T, dtype=torch.bool, device=k.device)
        joined_k, joined_v, joined_real = k, v, real
        if state is not None and "anchor_k" in state.buffers:
            if held_real is None:
                held_real = torch.ones(state.buffers["anchor_k"].shape[:2], dtype=torch.bool, device=k.device)
            joined_k = torch.cat([state.buffers["anchor_k"], k], dim=1)
            joined_v = torch.cat([state.buffers["anchor_v"], v], dim=1)
            joined_real = torch.cat([held_real, real], dim=1)
        order = reals_first(joined_real)[:, :m]
        anchor_k, anchor_v, anchor_real = take(joined_k, order), take(joined_v, order), take(joined_real, order)
        if state is not None:
            state.buffers.update(anchor_k=owned(anchor_k), anchor_v=owned(anchor_v), anchor_real=owned(anchor_real))
        return anchor_k, anchor_v, anchor_real

    def _merge_anchors(self, q, out, lse, anchor_k, anchor_v, anchor_real, position: torch.Tensor):
        """Add the anchors that have left a query's window to its softmax (one normaliser for both).

        A query at real position p (``position`` [B, T]) sees anchor a < m only once a <= p - w;
        closer anchors are inside the window already and must not count twice.
        """
        scale = q.shape[-1] ** -0.5
        k_a, v_a = repeat_kv(anchor_k, self.groups).float(), repeat_kv(anchor_v, self.groups).float()
        scores = torch.einsum("bthd,bahd->btha", q.float(), k_a) * scale  # [B, T, H, A]
        anchor = torch.arange(k_a.shape[1], device=q.device).view(1, 1, 1, -1)
        hidden = anchor > position[:, :, None, None] - self.config.window
        if anchor_real is not None:
            hidden = hidden | ~anchor_real[:, None, None, :]
        # a large finite floor instead of -inf: a row with no visible anchor gets weight e^{-1e30} = 0, no NaN
        scores = scores.masked_fill(hidden, -1e30)
        lse_a = torch.logsumexp(scores, dim=-1)
        total = torch.logaddexp(lse.float(), lse_a)
        out_a = torch.einsum("btha,bahd->bthd", torch.softmax(scores, dim=-1), v_a)
        merged = torch.exp(lse.float() - total)[..., None] * out.float() + torch.exp(lse_a - total)[..., None] * out_a
        return merged.to(out.dtype), total

    def _shared_normaliser(self, q, k, v, position_embeddings, state, real) -> torch.Tensor:
        """LoLCATs-style: softmax over the window and linear attention over older keys, one normaliser.

        Key j reaches the linear branch when it leaves query i's window (j <= i - w). Shifting the
        key/value stream right by w positions turns that into an ordinary causal linear
        attention; the shift's first positions come from the buffered keys (decoding) or are
        empty (zero features contribute nothing). With padding (pads first) the stream is that
        of the real keys, and pad keys in it are absent too.
        """
        B, T, _, _ = q.shape
        w = self.config.window
        buffered = 0 if state is None or "k_raw" not in state.buffers else state.buffers["k_raw"].shape[1]
        raw_k, raw_v, raw_real = k, v, real
        if state is not None:
            (raw_k, raw_v), raw_real = state.extend_padded(("k_raw", "v_raw"), (k, v), w, real, group="raw")
        pad = w - buffered
        stream_k = F.pad(raw_k, (0, 0, 0, 0, pad, 0))[:, :T]  # key i - w for query i (zeros before the start)
        stream_v = F.pad(raw_v, (0, 0, 0, 0, pad, 0))[:, :T]
        if raw_real is None:
            present = (torch.arange(T, device=q.device) >= pad).view(1, T, 1, 1)
        else:
            present = F.pad(raw_real, (pad, 0), value=False)[:, :T, None, None]
        features_k = self.feature_k(repeat_kv(stream_k, self.groups)) * present
        features_q = self.feature_q(q)
        stream_v = stream_v * present  # grouped value heads: the kernels broadcast them
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

        window_out, lse = self._window(q, k, v, position_embeddings, state, keep=w - 1, return_lse=True, real=real)
        # one normaliser: (e^lse · ŷ_win + num) / (e^lse + den), scaled by e^-m so nothing overflows
        m = torch.maximum(lse, torch.log(linear_den.clamp_min(torch.finfo(torch.float32).tiny)))
        window_weight, linear_weight = torch.exp(lse - m), torch.exp(-m)
        numerator = window_weight[..., None] * window_out.float() + linear_weight[..., None] * linear_num
        return numerator / (window_weight + linear_weight * linear_den)[..., None]
