"""KVCache: keys and values of every token seen so far, so each decoding step costs one token.

Layout per layer: k, v of shape (B, n_kv_heads, max_len, head_dim), allocated once.

Batching prompts of different lengths: rows are LEFT-padded to a common length P, so every row's
next token lands in the same slot and one `input_pos` (the cache offset) serves the whole batch:

    slot:    0    1    2    3    4   | 5 ...
    row 0:  pad  pad  The  cat  sat  | next
    row 1:  A    dog  ran  off  .    | next

Row b's token in slot s has rotary position s - pad[b] and may attend to slots pad[b]..s, so it
computes exactly what it computes alone (pad[b] = number of pad slots of row b).

Reusing keys/values computed earlier (lumos/model/prefix_cache.py): a row's cached prefix is copied in
(`write`) and only its new tokens are computed. Rows then have holes, slots that are not theirs between
prefix and new tokens; `valid` marks a row's own slots, and pad[b] counts ALL of its non-token slots
left of its new tokens, so "position = slot - pad[b]" still holds for every token computed here:

    slot:    0    1    2  |  3    4    5  | 6 ...
    row 0:  pad  The  cat | pad  sat  on  | next     (2 cached + 2 new tokens, pad = 2)
    row 1:  A    dog  ran | off  to   the | next     (3 cached + 3 new tokens, pad = 0)

`read` copies a row's own slots out again, so a conversation's cache outlives its batch.
"""
from __future__ import annotations

import copy

import torch


class KVCache:
    def __init__(self, n_layers: int, batch_size: int, n_kv_heads: int, head_dim: int, max_len: int,
                 dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu",
                 pad: torch.Tensor | list[int] | None = None, valid: torch.Tensor | None = None):
        shape = (batch_size, n_kv_heads, max_len, head_dim)
        # Zeros, not empty: slots past the cursor are never read, but finite values are cheap insurance.
        self.k = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(n_layers)]
        self.v = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(n_layers)]
        self.max_len, self.batch_size, self.device = max_len, batch_size, torch.device(device)
        self.set_pad(pad, valid)

    @classmethod
    def for_model(cls, model, batch_size: int, max_len: int, pad=None, valid=None) -> "KVCache":
        a, w = model.args, model.tok_embeddings.weight  # the float table (output may be int8)
        return cls(a.n_layers, batch_size, a.kv_heads, a.head_dim, max_len, w.dtype, w.device, pad, valid)

    def set_pad(self, pad, valid: torch.Tensor | None = None):
        """pad (B,): non-token slots of each row left of its new tokens (None = no padding).
        valid (B, max_len) bool: the row's own slots (default: slots >= pad, plain left padding).
        Resets nothing else: a new batch simply overwrites slots from 0."""
        B, device = self.batch_size, self.device
        pad = torch.zeros(B, dtype=torch.long) if pad is None else torch.as_tensor(pad, dtype=torch.long)
        if pad.shape != (B,):
            raise ValueError(f"pad has shape {tuple(pad.shape)}, expected ({B},)")
        self.pad = pad.to(device)
        self.padded = bool(pad.any())  # every non-token slot lies left of the new tokens, so pad counts them all
        if valid is None:
            slots = torch.arange(self.max_len, device=device)
            self.key_valid = slots[None, :] >= self.pad[:, None]  # (B, max_len): slot is a real token
        elif valid.shape != (B, self.max_len):
            raise ValueError(f"valid has shape {tuple(valid.shape)}, expected ({B}, {self.max_len})")
        else:
            self.key_valid = valid.to(device=device, dtype=torch.bool)

    def update(self, layer: int, input_pos: int, k: torch.Tensor, v: torch.Tensor):
        """Write k, v (B, Hkv, T, D) at slots input_pos..input_pos+T-1; return this layer's
        keys/values for slots 0..input_pos+T-1 (views, no copy)."""
        end = input_pos + k.shape[2]
        if end > self.max_len:
            raise ValueError(f"KV cache full: slot {end - 1} >= max_len {self.max_len}")
        kc, vc = self.k[layer], self.v[layer]
        kc[:, :, input_pos:end].copy_(k)
        vc[:, :, input_pos:end].copy_(v)
        return kc[:, :, :end], vc[:, :, :end]

    def mask(self, input_pos: int, T: int) -> torch.Tensor | None:
        """Which slots the T queries at input_pos.. may attend to: (B, 1, T, input_pos+T) bool,
        or None when every cached slot is allowed (one unpadded query: the common decode step)."""
        end = input_pos + T
        if T == 1:
            return self.key_valid[:, None, None, :end] if self.padded else None
        q = torch.arange(input_pos, end, device=self.pad.device)[:, None]  # (T, 1) query slots
        kslot = torch.arange(end, device=self.pad.device)[None, :]  # (1, S)
        causal = kslot <= q  # (T, S)
        m = causal[None] & self.key_valid[:, None, :end]  # (B, T, S)
        m = m | (kslot == q)[None]  # pad queries see themselves, so no row is all -inf (NaN)
        return m[:, None]

    def write(self, row: int, start: int, k: torch.Tensor, v: torch.Tensor):
        """Copy keys/values of L tokens computed earlier, k/v (n_layers, Hkv, L, D), into slots
        start..start+L-1 of batch row `row`. Their rotary positions are baked into the keys, so they
        must be the tokens' real positions 0..L-1 (a prefix)."""
        end = start + k.shape[2]
        for layer, (kc, vc) in enumerate(zip(self.k, self.v)):
            kc[row, :, start:end].copy_(k[layer])
            vc[row, :, start:end].copy_(v[layer])

    def read(self, row: int, end: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Copies of batch row `row`'s own slots (valid ones) before slot `end`, in order:
        k, v (n_layers, Hkv, L, D), ready for `write` into another batch."""
        idx = self.key_valid[row, :end].nonzero().squeeze(1)
        k = torch.stack([kc[row].index_select(1, idx) for kc in self.k])
        v = torch.stack([vc[row].index_select(1, idx) for vc in self.v])
        return k, v

    def rows(self, lo: int, hi: int) -> "KVCache":
        """Batch rows lo..hi-1 as a cache of their own that shares this one's storage (writes land here)."""
        view = copy.copy(self)
        view.k, view.v = [k[lo:hi] for k in self.k], [v[lo:hi] for v in self.v]
        view.pad, view.key_valid = self.pad[lo:hi], self.key_valid[lo:hi]
        view.padded, view.batch_size = bool(view.pad.any()), hi - lo
        return view

    def keep(self, rows: torch.Tensor):
        """Drop finished rows: keep batch rows `rows` (1-D index tensor), in that order."""
        self.k = [k.index_select(0, rows) for k in self.k]
        self.v = [v.index_select(0, rows) for v in self.v]
        self.pad = self.pad.index_select(0, rows)
        self.key_valid = self.key_valid.index_select(0, rows)
        self.padded = bool(self.pad.any())
        self.batch_size = len(rows)
