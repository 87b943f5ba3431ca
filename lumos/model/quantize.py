"""Weights laid out for decoding: every nn.Linear of a loaded model swapped for one of two layers.

    to_decode_layout(model)              # float weights stored transposed, (in, out)
    to_decode_layout(model, int8=True)   # int8 weights, one fp32 scale per output channel

Why transposed: a decode step multiplies a handful of rows (the batch) by every weight matrix, and the
CPU GEMM (MKL) runs `x @ W_t` with W_t (in, out) contiguous faster at 4-32 rows than nn.Linear's
`x @ W.T` with W (out, in) (`python bench/decode.py` measures both; at 1 row they are even), and
faster still with the weights packed by oneDNN for 8 rows (`packed=True`, a second copy of the weights).

Why int8 (the gpt-fast recipe, weight-only): a decode step at batch 1 streams every weight once, so
bytes are time. Each output channel (row of W) gets a symmetric scale s = max|W_row| / 127 and
stores round(W / s) in int8: 4x fewer bytes than fp32 (the embedding table, only gathered, stays
float). The CPU kernel `torch._weight_int8pack_mm` multiplies bf16 activations by the int8 weights
(it is vectorised for bf16 inputs, not fp32), so the layer rounds its input to bf16 and returns fp32.
That kernel's time grows with the rows, so past INT8_KERNEL_ROWS rows (prefill, big batches) the
weights are converted to bf16 (exactly: |q| <= 128) for a bf16 GEMM instead; on CUDA always. Activations, norms and the KV cache keep the
model's float dtype. The accuracy cost is measured by `python bench/decode.py --dtypes fp32,int8`
(greedy agreement with fp32) and the agent's accuracy with `run_agent.py --dtype int8`.

Inference only: the swapped layers have no gradients and state_dict keys of their own. LoRA adapters
are merged before the swap (lumos.agent.backends.LocalBackend does both in that order).
"""
from __future__ import annotations

import torch
from torch import nn


PACK_ROWS = 8  # the row count oneDNN's packed weights are laid out for (the batch the README measures)


class TransposedLinear(nn.Module):
    """y = x @ weight_t, weight_t (in_features, out_features): nn.Linear's weight, transposed once.

    packed=True (fp32 on a CPU with oneDNN) also keeps the weight reordered by oneDNN for PACK_ROWS rows
    (`torch.ops.mkldnn._reorder_linear_weight`, what torch.compile's CPU freezing uses) and multiplies more
    than one row with it: 1.3-1.5x faster than x @ weight_t at batch 8 in a whole decode step (measured,
    same tokens), slower at 1 row. It costs a second copy of the weights."""

    def __init__(self, linear: nn.Linear, packed: bool = False):
        super().__init__()
        assert linear.bias is None, "Llama projections have no bias"
        w = linear.weight.detach()
        self.weight_t = nn.Parameter(w.t().contiguous(), requires_grad=False)
        self.packed = None
        if packed and w.device.type == "cpu" and w.dtype == torch.float32 and torch.backends.mkldnn.is_available():
            self.packed = torch.ops.mkldnn._reorder_linear_weight(w, PACK_ROWS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.packed is None or x.numel() == x.shape[-1]:  # one row: the plain GEMV is faster
            return torch.matmul(x, self.weight_t)
        y = torch.ops.mkldnn._linear_pointwise(x.reshape(-1, x.shape[-1]), self.packed, None, "none", [], "")
        return y.reshape(*x.shape[:-1], -1)


def quantize_per_channel(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """w (out, in) float -> (int8 (out, in), fp32 scales (out,)), symmetric per output channel as gpt-fast's
    dynamically_quantize_per_channel, with scale = max|w_row| / 127 (gpt-fast divides by 127.5, which puts
    the largest weight on a rounding tie at +-127.5), q = clamp(round(w / scale), -127, 127)."""
    w = w.detach().float()
    scales = (w.abs().amax(dim=1) / 127).clamp_min(torch.finfo(torch.float32).eps)
    q = torch.clamp(torch.round(w / scales[:, None]), -127, 127).to(torch.int8)
    return q, scales


INT8_KERNEL_ROWS = 16  # up to this many rows _weight_int8pack_mm beats dequantise + bf16 GEMM (CPU, measured)


class Int8Linear(nn.Module):
    """Weight-only int8: y = (x @ q.T) * scales, q int8 (out, in), scales fp32 (out,)."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        assert linear.bias is None, "Llama projections have no bias"
        q, scales = quantize_per_channel(linear.weight)
        self.register_buffer("weight_int8", q.to(linear.weight.device))
        self.register_buffer("scales", scales.to(linear.weight.device))
        self.register_buffer("ones", torch.ones_like(scales, dtype=torch.bfloat16))  # the kernel's own scales

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        x2 = x.reshape(-1, shape[-1])
        xb = x2.to(torch.bfloat16)
        if x.device.type == "cpu" and x2.shape[0] <= INT8_KERNEL_ROWS:
            y = torch._weight_int8pack_mm(xb, self.weight_int8, self.ones)
        else:
            y = torch.nn.functional.linear(xb, self.weight_int8.to(torch.bfloat16))
        y = y * self.scales  # bf16 * fp32 -> fp32 in one op
        return (y if y.dtype == x.dtype else y.to(x.dtype)).reshape(*shape[:-1], -1)


def to_decode_layout(model: nn.Module, int8: bool = False, packed: bool = False) -> nn.Module:
    """Swap every nn.Linear of `model` (in place) for a TransposedLinear (packed: with oneDNN's packed copy
    for batches), or an Int8Linear; returns model. A tied output layer gets its own copy, the embedding
    keeps the shared float table."""
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.Linear:
                setattr(parent, name, Int8Linear(child) if int8 else TransposedLinear(child, packed))
    return model
