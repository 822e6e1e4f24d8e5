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


class LizardCacheLayer(DynamicLayer):
    """Constant-size state for one linearized layer.

    ``buffers`` hold the last few keys and values ([B, L, Hkv, D], L bounded by the window)
    and ``gla`` the linear branch's state; ``seen`` counts every token processed, which is
    what transformers asks for as the sequence length.
    """

    is_sliding = False
    is_croppable = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.seen = 0
        self.gla: GLAState | None = None
        self.buffers: dict[str, torch.Tensor] = {}

    def get_seq_length(self) -> int:
        return self.seen

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.seen + query_length, 0

    def update(self, *args, **kwargs):
        raise RuntimeError("a linearized layer keeps no growing key/value cache; it updates its own state")

    def reset(self) -> None:
        self.seen = 0
        self.gla = None
        self.buffers = {}

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

    def extend(self, name: str, new: torch.Tensor, keep: int) -> torch.Tensor:
        """Return the buffered ``name`` tensor followed by ``new`` ([B, T, ...]), and keep its last ``keep`` rows."""
        previous = self.buffers.get(name)
        joined = new if previous is None else torch.cat([previous, new], dim=1)
        self.buffers[name] = joined[:, joined.shape[1] - min(keep, joined.shape[1]) :].detach()
        return joined


def lizard_layer(cache, layer_idx: int) -> LizardCacheLayer:
    """The :class:`LizardCacheLayer` at ``layer_idx`` of a transformers cache, installing one if needed."""
    layers = cache.layers
    while len(layers) <= layer_idx:  # caches created without a config grow their layer list lazily
        layers.append(DynamicLayer())
    if not isinstance(layers[layer_idx], LizardCacheLayer):
        if layers[layer_idx].get_seq_length() > 0:
            raise RuntimeError(f"layer {layer_idx} cache already holds softmax keys; start generation from a new cache")
        layers[layer_idx] = LizardCacheLayer()
    return layers[layer_idx]


def cache_bytes(cache) -> int:
    """Total bytes of a transformers cache: decode state of linearized layers plus keys/values of softmax ones."""
    total = 0
    for layer in cache.layers:
        if isinstance(layer, LizardCacheLayer):
            total += layer.state_bytes()
        elif getattr(layer, "keys", None) is not None and layer.keys.numel():
            total += layer.keys.numel() * layer.keys.element_size() + layer.values.numel() * layer.values.element_size()
    return total
