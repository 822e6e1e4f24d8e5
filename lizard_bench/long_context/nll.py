"""Next-token negative log-likelihood of token windows, shared by the perplexity tasks.

Only the logits of the scored positions are computed (``logits_to_keep``): at 32K tokens
the full logits of a 50K-word vocabulary would take 6 GB in float32, while the scored tail
needs a few MB.
"""

from __future__ import annotations

import torch


@torch.no_grad()
def token_nll(model: torch.nn.Module, input_ids: torch.Tensor, scored: int | None = None) -> torch.Tensor:
    """NLL (nats) of each of the last ``scored`` tokens of every row of ``input_ids`` [B, T] -> [B, scored].

    ``scored=None`` scores every token after the first (T − 1 of them). Each window is an
    independent forward pass from an empty state, so every variant sees identical inputs.
    """
    length = input_ids.shape[1]
    keep = length - 1 if scored is None else scored
    if not 1 <= keep <= length - 1:
        raise ValueError(f"can score 1 to {length - 1} tokens of a {length}-token window, asked for {keep}")
    # logits at positions T-keep-1 .. T-2 predict tokens T-keep .. T-1; pass logits_to_keep only
    # when it saves something, so models without the argument still work for full windows
    extra = {"logits_to_keep": keep + 1} if keep + 1 < length else {}
    logits = model(input_ids=input_ids, **extra).logits[:, -(keep + 1) : -1].float()
    targets = input_ids[:, length - keep :]
    nll = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="none")
    return nll.view(input_ids.shape[0], keep)
