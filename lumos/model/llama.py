"""Llama-2 in plain PyTorch. Module names equal Meta's checkpoint keys, so a Meta state dict
loads with a strict `load_state_dict` (HF checkpoints go through lumos/model/checkpoint.py).

Two paths through one set of weights:
  model(tokens)                          full causal sequence, no cache: training.
  model(tokens, cache=c, input_pos=p)    decoding: tokens sit at cache slots p..p+T-1.

Shapes: B batch, T new tokens, S cached slots, H query heads, Hkv key/value heads, D head_dim.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelArgs
from .kv_cache import KVCache


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Normalise in fp32 (bf16 sums of squares lose digits), scale in the input dtype, as Meta/HF.
        # For fp32 input, .float() and .type_as() return x itself: no copies.
        x32 = x.float()
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return x32.type_as(x) * self.weight


def rotary_freqs(positions: torch.Tensor, head_dim: int, theta: float) -> torch.Tensor:
    """e^(i * position * theta^(-2j/D)), j < D/2, as complex64: positions (...,) -> (..., D/2).

    Computed in fp32 per forward rather than kept as a buffer: `model.to(bfloat16)` would round
    (or, being complex, mangle) a buffer, and this is a handful of tiny ops per forward."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, device=positions.device, dtype=torch.float32) / head_dim))
    angles = positions.to(torch.float32)[..., None] * inv_freq
    return torch.polar(torch.ones_like(angles), angles)


def apply_rotary(x: torch.Tensor, freqs_cis: torch.Tensor) -> torch.Tensor:
    """Rotate interleaved pairs (x[2j], x[2j+1]) as complex numbers by their position's angle
    (Meta's layout; HF's "rotate_half" pairs x[j] with x[j + D/2], hence the q/k permutation when
    loading HF checkpoints). x (B, T, H, D); freqs_cis (T, D/2) or (B, T, D/2). fp32 inside."""
    xc = torch.view_as_complex(x.float().reshape(*x.shape[:-1], -1, 2))  # (B, T, H, D/2)
    return torch.view_as_real(xc * freqs_cis.unsqueeze(-2)).flatten(-2).type_as(x)


class Attention(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.n_heads, self.n_kv_heads, self.head_dim = args.n_heads, args.kv_heads, args.head_dim
        self.n_rep = self.n_heads // self.n_kv_heads  # query heads sharing one key/value head
        self.wq = nn.Linear(args.dim, self.n_heads * self.head_dim, bias=False)
        self.wk = nn.Linear(args.dim, self.n_kv_heads * self.head_dim, bias=False)
        self.wv = nn.Linear(args.dim, self.n_kv_heads * self.head_dim, bias=False)
        self.wo = nn.Linear(self.n_heads * self.head_dim, args.dim, bias=False)

    def forward(self, x, freqs_cis, cache: KVCache | None = None, layer: int = 0, input_pos: int = 0, mask=None):
        """x (B, T, dim) -> (B, T, dim). Without a cache: causal attention within x.
        With a cache: keys/values of x are written at slots input_pos..input_pos+T-1 of layer
        `layer`, and queries attend to slots 0..input_pos+T-1 where `mask` (B, 1, T, S) allows."""
        B, T, _ = x.shape
        q = self.wq(x).view(B, T, self.n_heads, self.head_dim)
        k = self.wk(x).view(B, T, self.n_kv_heads, self.head_dim)
        v = self.wv(x).view(B, T, self.n_kv_heads, self.head_dim)
        q, k = apply_rotary(q, freqs_cis), apply_rotary(k, freqs_cis)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # (B, heads, T, D)
        if cache is None:
            if self.n_rep > 1:  # training path: plain repeat keeps every SDPA backend usable
                k = k.repeat_interleave(self.n_rep, dim=1)
                v = v.repeat_interleave(self.n_rep, dim=1)
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            k, v = cache.update(layer, input_pos, k, v)  # (B, Hkv, S, D), S = input_pos + T
            out = _cached_attention(q, k, v, mask, self.n_rep)
        return self.wo(out.transpose(1, 2).reshape(B, T, -1))


def _cached_attention(q, k, v, mask, n_rep):
    """q (B, H, T, D), k/v (B, Hkv, S, D), mask (B, 1, T, S) bool or None -> (B, H, T, D)."""
    B, H, T, D = q.shape
    if n_rep == 1 or T > 1:  # prefill: SDPA's fused CPU/GPU kernels; GQA by repeating k/v once
        if n_rep > 1:
            k, v = k.repeat_interleave(n_rep, dim=1), v.repeat_interleave(n_rep, dim=1)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    # One query per row with grouped-query attention: no copy of the cache. The n_rep query heads
    # sharing a kv head become n_rep rows of one matmul against that head's keys.
    Hkv, S = k.shape[1], k.shape[2]
    qg = q.view(B, Hkv, n_rep, D)
    scores = torch.matmul(qg, k.transpose(-1, -2)).float() * (1.0 / math.sqrt(D))  # (B, Hkv, n_rep, S)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))  # mask (B, 1, 1, S) broadcasts
    probs = torch.softmax(scores, dim=-1).type_as(q)
    return torch.matmul(probs, v).view(B, H, 1, D)


class FeedForward(nn.Module):
    """SwiGLU: w2(silu(w1 x) * w3 x)."""

    def __init__(self, dim: int, hidden_dim: int):
        super().__init__()
        self.w1 = nn.Linear(dim, hidden_dim, bias=False)
        self.w2 = nn.Linear(hidden_dim, dim, bias=False)
        self.w3 = nn.Linear(dim, hidden_dim, bias=False)

    def forward(self, x):
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class TransformerBlock(nn.Module):
    def __init__(self, layer_id: int, args: ModelArgs):
        super().__init__()
        self.layer_id = layer_id
        self.attention = Attention(args)
        self.feed_forward = FeedForward(args.dim, args.hidden_dim)
        self.attention_norm = RMSNorm(args.dim, eps=args.norm_eps)
        self.ffn_norm = RMSNorm(args.dim, eps=args.norm_eps)

    def forward(self, x, freqs_cis, cache=None, input_pos=0, mask=None):
        h = x + self.attention(self.attention_norm(x), freqs_cis, cache, self.layer_id, input_pos, mask)
        return h + self.feed_forward(self.ffn_norm(h))


class Transformer(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.args = args
        self.tok_embeddings = nn.Embedding(args.vocab_size, args.dim)
        self.layers = nn.ModuleList(TransformerBlock(i, args) for i in range(args.n_layers))
        self.norm = RMSNorm(args.dim, eps=args.norm_eps)
        self.output = nn.Linear(args.dim, args.vocab_size, bias=False)
        if args.tie_word_embeddings:
            self.output.weight = self.tok_embeddings.weight

    def forward(self, tokens: torch.Tensor, cache: KVCache | None = None, input_pos: int = 0,
                last_only: bool = False, logits_at: torch.Tensor | None = None) -> torch.Tensor:
        """tokens (B, T) int64 -> logits (B, T, vocab_size) in fp32 (B, 1, vocab) if last_only.
        logits_at (N,) flat indices into B*T -> logits (N, vocab) of those positions only: training
        scores only assistant tokens (~1 in 8 in Lumos data), so the output layer and the loss skip the rest.

        With a cache, row b's token at slot s has position s - cache.pad[b] (rows are left-padded
        to a common length), and may attend to slots pad[b]..s. Pad slots attend to themselves
        only, which keeps their (unused) keys/values finite."""
        B, T = tokens.shape
        h = self.tok_embeddings(tokens)
        if cache is None:
            freqs_cis = rotary_freqs(torch.arange(T, device=tokens.device), self.args.head_dim, self.args.rope_theta)
            mask = None
        else:
            slots = torch.arange(input_pos, input_pos + T, device=tokens.device)
            if cache.padded:
                positions = (slots - cache.pad[:, None]).clamp_min(0)  # (B, T)
            else:
                positions = slots
            freqs_cis = rotary_freqs(positions, self.args.head_dim, self.args.rope_theta)
            mask = cache.mask(input_pos, T)
        for layer in self.layers:
            h = layer(h, freqs_cis, cache, input_pos, mask)
        if last_only:
            h = h[:, -1:]
        elif logits_at is not None:
            h = h.flatten(0, 1)[logits_at]
        return self.output(self.norm(h)).float()

    @torch.no_grad()
    def init_weights(self, seed: int = 0, std: float = 0.02):
        """Random init (normal(0, std), residual projections scaled down by sqrt(2 * n_layers) as
        in GPT-2; norms = 1). Works on a model materialised with `to_empty()` from the meta device."""
        if self.args.tie_word_embeddings and self.output.weight is not self.tok_embeddings.weight:
            self.output.weight = self.tok_embeddings.weight  # to_empty() unties shared parameters
        g = torch.Generator(device="cpu").manual_seed(seed)
        out_std = std / math.sqrt(2 * self.args.n_layers)
        for name, p in self.named_parameters():
            if name.endswith("norm.weight"):
                p.fill_(1.0)
                continue
            s = out_std if name.endswith(("wo.weight", "w2.weight")) else std
            copy_full_(p, torch.randn(p.shape, generator=g, dtype=torch.float32).mul_(s))  # same values on every rank
        return self


@torch.no_grad()
def copy_full_(p: torch.Tensor, full: torch.Tensor) -> None:
    """p.copy_(full), where `full` is the whole tensor: an FSDP-sharded DTensor keeps only its shard."""
    if hasattr(p, "device_mesh"):
        from torch.distributed.tensor import distribute_tensor
        full = distribute_tensor(full.to(p.device_mesh.device_type), p.device_mesh, p.placements)
    p.copy_(full)
