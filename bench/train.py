"""Training-step throughput: our Transformer + trainer step vs transformers.LlamaForCausalLM.

One process, CPU, same config, same weights, same batch (right-padded, Lumos-style labels),
fp32. Each "step" is what the trainer does per optimizer step with one micro-batch:
forward -> token CE over label tokens -> backward -> clip grad norm -> AdamW step -> zero grads.
Rounds alternate between the two so machine load hits both alike; median and minimum are reported.
MFU is relative to a dense fp32 matmul measured in the same process (a shared CPU has no
datasheet peak that applies).

    python bench/train.py                      # tiny preset, vocab 4096, batch 8 x 256
    python bench/train.py --dim 512 --n-layers 8 --batch 4 --seq 512 --threads 2
"""
import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lumos.model.checkpoint import save_hf  # noqa: E402
from lumos.model.config import ModelArgs  # noqa: E402
from lumos.model.llama import Transformer  # noqa: E402
from lumos.train.distributed import Dist  # noqa: E402
from lumos.train.trainer import flops_per_token, forward_backward, measure_peak_flops  # noqa: E402


def make_batch(args, batch, seq, seed=0):
    """Right-padded tokens and targets (labels on the second half of each row, as an answer)."""
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(3, args.vocab_size, (batch, seq), generator=g)
    targets = torch.full_like(tokens, -100)
    lengths = torch.randint(seq // 2, seq + 1, (batch,), generator=g)
    lengths[0] = seq
    for b, n in enumerate(lengths.tolist()):
        targets[b, n // 2:n - 1] = tokens[b, n // 2 + 1:n]
        tokens[b, n:] = 2
    return tokens, targets, int(lengths.sum())


def ours_step(model, opt, tokens, targets):
    n = int((targets != -100).sum())
    forward_backward(model, [(tokens, targets)], n, torch.autocast("cpu", enabled=False))
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)


def hf_step(model, opt, tokens, targets):
    attention_mask = (targets != -100) | (tokens != 2)  # a real HF batch carries the padding mask
    logits = model(input_ids=tokens, attention_mask=attention_mask.long()).logits
    loss = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=-100)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--n-layers", type=int, default=4)
    p.add_argument("--n-heads", type=int, default=8)
    p.add_argument("--n-kv-heads", type=int, default=4)
    p.add_argument("--vocab", type=int, default=4096)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq", type=int, default=256)
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    from transformers import LlamaForCausalLM

    args = ModelArgs(dim=a.dim, n_layers=a.n_layers, n_heads=a.n_heads, n_kv_heads=a.n_kv_heads,
                     vocab_size=a.vocab, max_seq_len=max(a.seq, 256), tie_word_embeddings=True)
    ours = Transformer(args).init_weights(0)
    with tempfile.TemporaryDirectory() as d:
        save_hf(ours, args, d)
        hf = LlamaForCausalLM.from_pretrained(d, torch_dtype=torch.float32, attn_implementation="sdpa")
    tokens, targets, n_tok = make_batch(args, a.batch, a.seq)
    models = {"ours": (ours, ours_step), "transformers": (hf, hf_step)}
    opts = {k: torch.optim.AdamW(m.parameters(), lr=1e-5, weight_decay=0.0) for k, (m, _) in models.items()}
    times = {k: [] for k in models}
    for name, (m, step) in models.items():  # warm-up (allocations, optimizer state)
        step(m, opts[name], tokens, targets)
    for _ in range(a.rounds):
        for name, (m, step) in models.items():
            t = time.perf_counter()
            step(m, opts[name], tokens, targets)
            times[name].append(time.perf_counter() - t)
    peak = measure_peak_flops(torch.device("cpu"), torch.float32)
    n_params = sum(p.numel() for p in ours.parameters())
    fpt = flops_per_token(args, n_params, n_tok / a.batch)
    print(f"config: dim {a.dim}, layers {a.n_layers}, heads {a.n_heads}/{a.n_kv_heads}, vocab {a.vocab}, "
          f"{n_params / 1e6:.2f}M params; batch {a.batch} x {a.seq} ({n_tok} real tokens); "
          f"{a.threads} thread(s); fp32 matmul peak {peak / 1e9:.1f} GFLOP/s")
    # On a shared machine the minimum is the least disturbed measurement; the median is shown too.
    print("| step | median s/step | min s/step | tokens/s (at min) | MFU (at min) |")
    print("|---|---|---|---|---|")
    med = {k: statistics.median(v) for k, v in times.items()}
    best = {k: min(v) for k, v in times.items()}
    for name in models:
        tps = n_tok / best[name]
        print(f"| {name} | {med[name]:.3f} | {best[name]:.3f} | {tps:.0f} | {fpt * tps / peak:.1%} |")
    print(f"ours / transformers speed: {med['transformers'] / med['ours']:.2f}x (median), "
          f"{best['transformers'] / best['ours']:.2f}x (min)")


if __name__ == "__main__":
    main()
