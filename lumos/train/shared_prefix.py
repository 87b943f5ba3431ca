"""Shared-prefix training: compute the tokens every conversation of a micro-batch starts with once.

Lumos grounding conversations all open with the same ~170-token instruction and action list
("Please ground the given subgoal ... Define(variable/number): ...") before the task; that is ~40 % of
their tokens. A plain forward computes it once per row. Here the micro-batch's common prefix P runs
once, as a batch of one, and the rows' remaining tokens attend to its keys and values:

    prefix  (1, P):    p0 p1 ... p(P-1)                 causal within itself
    rest    (B, T-P):  row b's tokens P..T-1            attend to all of the prefix, causal within the rest

Every row computes exactly the function the plain forward computes (same positions, same keys), so
the loss and the gradients agree up to float rounding; autograd sums the B rows' gradients through
the one prefix (the backward of `expand`). The prefix must carry no labels (it is part of the first
user turn), and it is used only when it is long enough to pay for a second forward call.

The model is not changed: `Transformer.forward` already lets queries at `input_pos` attend to keys
handed back by a cache; `SharedPrefixKV` is a cache that keeps the prefix's keys and values (with
their autograd history) and prepends them, broadcast over the batch, to the rest's.
"""
from __future__ import annotations

import torch

MIN_PREFIX = 16  # shorter common prefixes are not worth a second forward call


class SharedPrefixKV:
    """A training-time 'cache' for Transformer.forward: the first call (input_pos 0, batch 1) stores
    each layer's keys/values; the second (input_pos P, batch B) attends to them and to its own."""

    padded = False  # rows are right-padded (lumos.train.data.collate): positions are plain slots

    def __init__(self):
        self.k: dict[int, torch.Tensor] = {}
        self.v: dict[int, torch.Tensor] = {}

    def update(self, layer: int, input_pos: int, k: torch.Tensor, v: torch.Tensor):
        """k, v (B, Hkv, T, D) of the tokens at slots input_pos.. -> this layer's keys/values for
        slots 0..input_pos+T-1 (the prefix's broadcast over the batch, then the rows' own)."""
        if input_pos == 0:  # the prefix itself
            self.k[layer], self.v[layer] = k, v
            return k, v
        kp, vp = self.k[layer], self.v[layer]
        if kp.shape[2] != input_pos:
            raise ValueError(f"rest starts at slot {input_pos} but the prefix has {kp.shape[2]} tokens")
        B = k.shape[0]
        return (torch.cat([kp.expand(B, -1, -1, -1), k], dim=2),
                torch.cat([vp.expand(B, -1, -1, -1), v], dim=2))

    def mask(self, input_pos: int, T: int) -> torch.Tensor:
        """(1, 1, T, input_pos+T) bool: every query sees the whole prefix and the rest causally."""
        q = torch.arange(input_pos, input_pos + T)[:, None]
        return (torch.arange(input_pos + T)[None, :] <= q)[None, None]


def common_prefix_len(tokens: torch.Tensor, targets: torch.Tensor) -> int:
    """Length of the token prefix all rows of (B, T) `tokens` share and that carries no label (so no
    logit is needed inside it). At most T - 1: every row keeps at least one token of its own."""
    same = (tokens == tokens[:1]).all(dim=0)  # (T,) column identical in every row
    labelled = (targets != -100).any(dim=0)   # (T,) some row is scored at this position
    stop = ~same | labelled
    n = int(stop.nonzero()[0]) if stop.any() else tokens.shape[1]
    return min(n, tokens.shape[1] - 1)


def shared_prefix_len(tokens: torch.Tensor, targets: torch.Tensor) -> int:
    """The prefix the trainer runs once for this micro-batch: common_prefix_len, or 0 when there is a
    single row or the prefix is shorter than MIN_PREFIX (then the plain forward runs)."""
    if len(tokens) < 2:
        return 0
    P = common_prefix_len(tokens, targets)
    return P if P >= MIN_PREFIX else 0


def forward_shared_prefix(model, tokens: torch.Tensor, at: torch.Tensor, prefix_len: int) -> torch.Tensor:
    """model(tokens, logits_at=at) computed with the first `prefix_len` tokens (shared by every row)
    run once. at: flat indices into B*T, all at positions >= prefix_len. Returns (len(at), V)."""
    B, T = tokens.shape
    P = prefix_len
    cache = SharedPrefixKV()
    model(tokens[:1, :P], cache=cache, input_pos=0, logits_at=at[:0])  # keys/values only, no logits
    rest_at = (at // T) * (T - P) + (at % T - P)  # the same positions in the (B, T - P) rest
    return model(tokens[:, P:], cache=cache, input_pos=P, logits_at=rest_at)
