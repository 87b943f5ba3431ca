"""KVCache: keys and values of every token seen so far, so each decoding step costs one token.

Layout per layer: k, v of shape (B, n_kv_heads, max_len, head_dim), allocated once.

Batching prompts of different lengths: rows are LEFT-padded to a common length P, so every row's
next token lands in the same slot and one `input_pos` (the cache offset) serves the whole batch:

    slot:    0    1    2    3    4   | 5 ...
    row 0:  pad  pad  The  cat  sat  | next
    row 1:  A    dog  ran  off  .    | next

Row b's token in slot s has rotary position s - pad[b] and may attend to slots pad[b]..s, so it
computes exactly what it computes alone (pad[b] = number of pad slots of row b).
"""
from __future__ import annotations

import torch


class KVCache:
    def __init__(self, n_layers: int, batch_size: int, n_kv_heads: int, head_dim: int, max_len: int,
                 dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu",
                 pad: torch.Tensor | list[int] | None = None):
        shape = (batch_size, n_kv_heads, max_len, head_dim)
        # Zeros, not empty: slots past the cursor are never read, but finite values are cheap insurance.
        self.k = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(n_layers)]
        self.v = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(n_layers)]
        self.max_len, self.batch_size, self.device = max_len, batch_size, torch.device(device)
        self.set_pad(pad)

    @classmethod
    def for_model(cls, model, batch_size: int, max_len: int, pad=None) -> "KVCache":
        a, w = model.args, model.output.weight
        return cls(a.n_layers, batch_size, a.kv_heads, a.head_dim, max_len, w.dtype, w.device, pad)

    def set_pad(self, pad):
        """pad (B,): left-pad slots of each row (None = no padding). Resets nothing else: a new
        batch simply overwrites slots from 0."""
        B, device = self.batch_size, self.device
        pad = torch.zeros(B, dtype=torch.long) if pad is None else torch.as_tensor(pad, dtype=torch.long)
        if pad.shape != (B,):
            raise ValueError(f"pad has shape {tuple(pad.shape)}, expected ({B},)")
        self.pad = pad.to(device)
        self.padded = bool(pad.any())
        slots = torch.arange(self.max_len, device=device)
        self.key_valid = slots[None, :] >= self.pad[:, None]  # (B, max_len): slot is a real token

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

    def keep(self, rows: torch.Tensor):
        """Drop finished rows: keep batch rows `rows` (1-D index tensor), in that order."""
        self.k = [k.index_select(0, rows) for k in self.k]
        self.v = [v.index_select(0, rows) for v in self.v]
        self.pad = self.pad.index_select(0, rows)
        self.key_valid = self.key_valid.index_select(0, rows)
        self.padded = bool(self.pad.any())
        self.batch_size = len(rows)
