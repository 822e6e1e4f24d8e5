"""Decode state of a linearized layer: the GLA state (S, z) and a buffer of the last keys/values.

Its size does not depend on how many tokens came before — the point of linearizing. It is a
transformers cache *layer*, so ``model.generate()`` works unchanged: a linearized attention
module swaps this layer into whatever cache generate created, in place of the growing
key/value layer that softmax attention would use.
"""

from __future__ import annotations

import torch
from transformers.cache_utils import DynamicLayer

from lizard_bench.kernels import GLAState
from lizard_bench.linearize.padding import pads_first, take


class LizardCacheLayer(DynamicLayer):
    """Constant-size state for one linearized layer.

    ``buffers`` hold the last few keys and values ([B, L, Hkv, D], L bounded by the window)
    and ``gla`` the linear branch's state; ``seen`` counts every token processed, which is
    what transformers asks for as the sequence length. Once a batch has had padding, the
    buffers are kept with each row's pads first and a mask of which rows are real tokens
    (``<group>_real``), and ``real_seen`` [B] counts each row's real tokens. While decoding, the
    window's buffers are a ring written in place (``rings``, see :meth:`extend_window`);
    :meth:`window_state` reads them in token order.

    ``chunk_mask``: the attention mask transformers builds for a forward needs to cover only
    the new tokens' keys, because the state already holds everything about earlier ones; a
    mask over every earlier key would make a chunked prefill's memory grow with the prompt
    (a [chunk × prompt] mask, and its checks, per chunk). Only a model with no softmax layer
    may say so: transformers sizes one mask for all layers, and a hybrid's softmax layers need
    every key.
    """

    is_sliding = False
    is_croppable = False

    def __init__(self, chunk_mask: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.chunk_mask = chunk_mask
        self.seen = 0
        self.gla: GLAState | None = None
        self.buffers: dict[str, torch.Tensor] = {}
        # groups of buffers held as rings while decoding (see extend_window): group -> (names, oldest slot)
        self.rings: dict[str, tuple[tuple[str, ...], int]] = {}
        # per ring group, buffers read before it held in one tensor with it (see ring_with_prefix)
        self.prefixed: dict[str, tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]] = {}

    def get_seq_length(self) -> int:
        return self.seen

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        """(keys the mask covers, offset of the first): the new tokens only, or every token (see ``chunk_mask``)."""
        return (query_length, self.seen) if self.chunk_mask else (self.seen + query_length, 0)

    def update(self, *args, **kwargs):
        raise RuntimeError("a linearized layer keeps no growing key/value cache; it updates its own state")

    def reset(self) -> None:
        self.seen = 0
        self.gla = None
        self.buffers = {}
        self.rings = {}
        self.prefixed = {}

    def crop(self, tokens_to_remove: int) -> None:
        raise NotImplementedError("a recurrent state cannot be cropped (assisted decoding is not supported)")

    def _apply(self, fn) -> None:
        if self.gla is not None:
            self.gla = GLAState(S=fn(self.gla.S), z=fn(self.gla.z))
        self.buffers = {name: fn(t) for name, t in self.buffers.items()}

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        self._apply(lambda t: t.index_select(0, beam_idx.to(t.device)))

    def batch_repeat_interleave(self, repeats: int) -> None:
        self._apply(lambda t: t.repeat_interleave(repeats, dim=0))

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        self._apply(lambda t: t[indices])

    def state_bytes(self) -> int:
        """Bytes held by this layer's decode state (what must stay in memory between tokens)."""
        tensors = list(self.buffers.values())
        if self.gla is not None:
            tensors += [self.gla.S, self.gla.z]
        return sum(t.numel() * t.element_size() for t in tensors)

    def window_state(self) -> dict[str, torch.Tensor]:
        """The buffers (window, anchors, their masks), each in token order: what the next tokens read."""
        self._unroll()
        return dict(self.buffers)

    @property
    def padded(self) -> bool:
        """Whether this state has met padding (its buffers then carry masks, and ``real_seen`` counts)."""
        return any(name.endswith("_real") or name == "real_seen" for name in self.buffers)

    def real_seen(self, batch: int, device: torch.device) -> torch.Tensor:
        """Real tokens processed so far in each row ([B] long): ``seen`` until padding has been met."""
        held = self.buffers.get("real_seen")
        return held if held is not None else torch.full((batch,), self.seen, dtype=torch.long, device=device)

    def count_real(self, real: torch.Tensor | None, length: int) -> None:
        """Advance ``real_seen`` by a chunk's real tokens (``real`` [B, T] bool, None = all of ``length``)."""
        if real is None and "real_seen" not in self.buffers:
            return
        batch, device = (real.shape[0], real.device) if real is not None else (None, None)
        held = self.buffers.get("real_seen")
        if held is None:
            held = torch.full((batch,), self.seen, dtype=torch.long, device=device)
        self.buffers["real_seen"] = held + (real.sum(dim=1) if real is not None else length)

    def extend_padded(
        self, names: tuple[str, ...], new: tuple[torch.Tensor, ...], keep: int, real: torch.Tensor | None,
        group: str,
    ) -> tuple[list[torch.Tensor], torch.Tensor | None]:
        """:meth:`extend` for aligned buffers ``names`` whose rows may be padding; returns (joined, real mask).

        Without padding, now or before, this is :meth:`extend` and the mask is None. Otherwise
        buffer and chunk are joined with each row's pads moved first (real tokens in order),
        so a window over the last rows spans real tokens only; the last ``keep`` rows and their
        mask (``<group>_real``) are kept.
        """
        self._unroll(group)
        key = f"{group}_real"
        held_real = self.buffers.get(key)
        if real is None and held_real is None:
            return [self.extend(name, tensor, keep) for name, tensor in zip(names, new, strict=True)], None
        batch, length = new[0].shape[:2]
        device = new[0].device
        if real is None:
            real = torch.ones(batch, length, dtype=torch.bool, device=device)
        if held_real is None:
            held = self.buffers.get(names[0])
            held_real = torch.ones(batch, 0 if held is None else held.shape[1], dtype=torch.bool, device=device)
        joined_real = torch.cat([held_real, real], dim=1)
        order = pads_first(joined_real)
        joined_real = take(joined_real, order)
        joined = []
        for name, tensor in zip(names, new, strict=True):
            previous = self.buffers.get(name)
            whole = tensor if previous is None else torch.cat([previous, tensor], dim=1)
            joined.append(take(whole, order))
        start = joined_real.shape[1] - min(keep, joined_real.shape[1])
        for name, whole in zip(names, joined, strict=True):
            self.buffers[name] = owned(whole[:, start:])
        self.buffers[key] = owned(joined_real[:, start:])
        return joined, joined_real

    def extend_window(
        self, names: tuple[str, ...], new: tuple[torch.Tensor, ...], keep: int, real: torch.Tensor | None,
        group: str,
    ) -> tuple[list[torch.Tensor], torch.Tensor | None]:
        """:meth:`extend_padded` for a window that reads its keys in any order; a decode step is written in place.

        Why: a single query attends to every buffered key, so their order does not matter, and
        decoding need not copy the whole window per token. Once the buffer is full, a token
        without padding (now or before) and outside autograd goes into a ring of ``keep + 1``
        slots over the oldest key, and the ring is returned as it lies. Anything else
        (prefill chunks, padding) goes through :meth:`extend_padded`, which first puts a ring
        back in token order.
        """
        held = self.buffers.get(names[0])
        ring = self.rings.get(group)
        single = new[0].shape[1] == 1 and real is None and f"{group}_real" not in self.buffers
        if not single or torch.is_grad_enabled() or (ring is None and (held is None or held.shape[1] < keep)):
            return self.extend_padded(names, new, keep, real, group)
        if ring is None:  # the first step on a full buffer: the ring starts as buffer + new, oldest first
            for name, tensor in zip(names, new, strict=True):
                self.buffers[name] = torch.cat([self.buffers[name], tensor], dim=1)
            self.rings[group] = (names, 0)
        else:
            oldest = ring[1]
            for name, tensor in zip(names, new, strict=True):
                self.buffers[name][:, oldest].copy_(tensor[:, 0])
            self.rings[group] = (names, (oldest + 1) % self.buffers[names[0]].shape[1])
        return [self.buffers[name] for name in names], None

    def ring_with_prefix(
        self, names: tuple[str, ...], new: tuple[torch.Tensor, ...], keep: int, prefix: tuple[str, ...], group: str,
    ) -> list[torch.Tensor]:
        """A decode step of :meth:`extend_window` (no padding) that returns each ring joined after its ``prefix``
        buffer (e.g. the anchors' keys before the window's), without a copy per token.

        Why: one query reads the anchors and the window alike, and joining them anew per token copied the
        whole window in every layer. The first step joins them once and makes the prefix and the ring
        views of the joined tensor, so the ring's in-place writes land in it. Anything that replaces a
        buffer (a prefill chunk, padding, beam reordering) breaks the views, and the next step joins again.
        """
        rings, _ = self.extend_window(names, new, keep, None, group)
        held = self.prefixed.get(group)
        current = tuple(self.buffers[name] for name in (*prefix, *names))
        if held is not None and all(a is b for a, b in zip(held[0], current, strict=True)):
            return list(held[1])
        joined = tuple(torch.cat([self.buffers[first], ring], dim=1) for first, ring in zip(prefix, rings, strict=True))
        for first, name, whole in zip(prefix, names, joined, strict=True):
            split = self.buffers[first].shape[1]
            self.buffers[first], self.buffers[name] = whole[:, :split], whole[:, split:]
        self.prefixed[group] = (tuple(self.buffers[name] for name in (*prefix, *names)), joined)
        return list(joined)

    def _unroll(self, group: str | None = None) -> None:
        """Put ring buffers (of ``group``, or all) back in token order, without their oldest slot (in no window now)."""
        for ring_group in [group] if group is not None else list(self.rings):
            names, oldest = self.rings.pop(ring_group, ((), 0))
            for name in names:
                ring = self.buffers[name]
                self.buffers[name] = torch.roll(ring, -(oldest + 1), dims=1)[:, : ring.shape[1] - 1]

    def extend(self, name: str, new: torch.Tensor, keep: int) -> torch.Tensor:
        """Return the buffered ``name`` tensor followed by ``new`` ([B, T, ...]), and keep its last ``keep`` rows."""
        for group, (names, _) in list(self.rings.items()):
            if name in names:
                self._unroll(group)
        previous = self.buffers.get(name)
        joined = new if previous is None else torch.cat([previous, new], dim=1)
        self.buffers[name] = owned(joined[:, joined.shape[1] - min(keep, joined.shape[1]) :])
        return joined


def owned(view: torch.Tensor) -> torch.Tensor:
    """``view`` detached, copied when it is a slice of a larger tensor.

    Why: a buffer that keeps the last 127 keys of a 2048-token chunk as a slice keeps the whole
    chunk's keys alive (views share their storage), ~13× the state's size in every layer; over a
    chunked prefill that was most of the memory left behind (194 MiB against a 14 MiB state).
    """
    view = view.detach()
    return view.clone() if view.untyped_storage().nbytes() > view.numel() * view.element_size() else view


def lizard_layer(cache, layer_idx: int, chunk_mask: bool = False) -> LizardCacheLayer:
    """The :class:`LizardCacheLayer` at ``layer_idx`` of a transformers cache, installing one if needed.

    ``chunk_mask``: True when the model has no softmax layer (see :class:`LizardCacheLayer`).
    """
    layers = cache.layers
    while len(layers) <= layer_idx:  # caches created without a config grow their layer list lazily
        layers.append(DynamicLayer())
    if not isinstance(layers[layer_idx], LizardCacheLayer):
        if layers[layer_idx].get_seq_length() > 0:
            raise RuntimeError(f"layer {layer_idx} cache already holds softmax keys; start generation from a new cache")
        layers[layer_idx] = LizardCacheLayer(chunk_mask=chunk_mask)
    return layers[layer_idx]


def constant_size(cache) -> bool:
    """Whether every layer of a transformers cache is a linearized layer's state (none grows with the context)."""
    return bool(cache.layers) and all(isinstance(layer, LizardCacheLayer) for layer in cache.layers)


def cache_bytes(cache) -> int:
    """Total bytes of a transformers cache: decode state of linearized layers plus keys/values of softmax ones."""
    total = 0
    for layer in cache.layers:
        if isinstance(layer, LizardCacheLayer):
            total += layer.state_bytes()
        elif getattr(layer, "keys", None) is not None and layer.keys.numel():
            total += layer.keys.numel() * layer.keys.element_size() + layer.values.numel() * layer.values.element_size()
    return total
