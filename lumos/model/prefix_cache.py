"""PrefixCache: keys/values of earlier conversations, so a prompt that starts where one ended costs
only its new tokens (the prefix caching of vLLM, SGLang's RadixAttention in its simplest form).

A Lumos-I conversation only grows: the planner's k-th prompt is its (k-1)-th prompt, its generation,
and a short feedback turn. Keep each conversation's keys/values under its key (the example id) and
the next turn prefills only what is new. Prompts of different examples share an instruction prefix;
one copy of its keys/values (key None, "shared") serves every example.

Matching is by token ids, never by text: a prompt reuses the longest common prefix of its ids and an
entry's ids, so a tokenization that differs at a join (or a generation cut at a stop string) reuses
up to the first differing token and recomputes the rest. Outputs are those of a full prefill, since
every cached key/value is what the model computes for that token at that position.

    cache = PrefixCache(max_bytes=1 << 30)
    entry, n = cache.match("ex-3", ids)     # reuse entry.k[:, :, :n], entry.v[:, :, :n]; n < len(ids)
    cache.put("ex-3", ids + new_ids[:-1], k, v)

Entries are evicted least recently used first once their keys/values exceed max_bytes (an evicted
conversation is simply prefilled again), and `forget(keys)` drops finished conversations at once.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch


@dataclass(eq=False)
class Entry:
    key: str | None
    tokens: list[int]
    k: torch.Tensor  # (n_layers, Hkv, L, D), L = len(tokens)
    v: torch.Tensor

    @property
    def nbytes(self) -> int:
        return 2 * self.k.numel() * self.k.element_size()


def common_prefix(a: list[int], b: list[int]) -> int:
    """Length of the longest common prefix of two id lists."""
    n = min(len(a), len(b))
    if a[:n] == b[:n]:  # the usual case (a conversation that grew), at C speed
        return n
    lo, hi = 0, n  # invariant: a[:lo] == b[:lo], a[:hi] != b[:hi]
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid
    return lo


class PrefixCache:
    """max_bytes: keys/values kept, all entries together. per_key: entries kept per key (one backend may
    hold several conversations of one example, e.g. its planner's and its grounder's)."""

    def __init__(self, max_bytes: int = 4 << 30, per_key: int = 4):
        self.max_bytes, self.per_key = max_bytes, per_key
        self.entries: OrderedDict[int, Entry] = OrderedDict()  # id(entry) -> entry, least recently used first
        self.nbytes = 0
        self.shared_tokens = 0  # tokens prefilled to make shared entries (lumos.model.generate.share_prefix)

    def match(self, key: str | None, ids: list[int]) -> tuple[Entry | None, int]:
        """The entry of `key` or a shared one with the longest common prefix with ids, and that length,
        at most len(ids) - 1 (the last prompt token must be computed: its logits pick the first new token)."""
        best, n_best = None, 0
        for e in self.entries.values():
            if e.key is None or e.key == key:
                n = min(common_prefix(e.tokens, ids), len(ids) - 1)
                if n > n_best:
                    best, n_best = e, n
        if best is not None:
            self.entries.move_to_end(id(best))
        return best, n_best

    def put(self, key: str | None, tokens: list[int], k: torch.Tensor, v: torch.Tensor) -> Entry:
        """Keep k/v (n_layers, Hkv, len(tokens), D) of `tokens` under `key` (None: shared by every key).
        An entry of the same key that `tokens` extends is replaced: the conversation grew."""
        if k.shape[2] != len(tokens) or v.shape != k.shape:
            raise ValueError(f"k/v of shape {tuple(k.shape)}/{tuple(v.shape)} for {len(tokens)} tokens")
        same = [e for e in self.entries.values() if e.key == key]
        for e in same:
            if common_prefix(e.tokens, tokens) == len(e.tokens):
                self._drop(e)
                same.remove(e)
                break
        if len(same) >= self.per_key:
            self._drop(same[0])  # that key's least recently used
        e = Entry(key, list(tokens), k, v)
        self.entries[id(e)] = e
        self.nbytes += e.nbytes
        while self.nbytes > self.max_bytes and self.entries:
            self._drop(next(iter(self.entries.values())))
        return e

    def forget(self, keys):
        """Drop every entry of these keys (conversations that are over)."""
        keys = set(keys)
        for e in [e for e in self.entries.values() if e.key in keys]:
            self._drop(e)

    def _drop(self, e: Entry):
        if self.entries.pop(id(e), None) is not None:
            self.nbytes -= e.nbytes

    def __len__(self) -> int:
        return len(self.entries)
