"""Decode speed: our KV-cached greedy decoding vs transformers' generate, same weights, one process.

    python bench/decode.py                      # ~106M-param Llama, batch 1 + 8, every variant below
    python bench/decode.py --variants "fp32,int8" --batches 1 --new-tokens 32
    python bench/decode.py --checkpoint smollm2 --variants "fp32 nn.Linear,HF fp32" --batches 1 --agreement ''   # real weights

Variants of our decoder: "fp32 nn.Linear" (the weights as loaded), "fp32" (weights stored transposed,
lumos/model/quantize.py), "fp32 packed" (also packed by oneDNN for batches: what run_agent.py uses on a
CPU), "bf16", "int8" (weight-only, per-channel scales); HF runs fp32 and bf16. For each batch size every variant generates --new-tokens
greedy tokens (EOS ignored) after a --prompt-len prompt, all alternating --repeats times; the best time
of each counts, so a momentarily busy machine hurts all alike. Roofline: a decode step must stream
every weight matrix once (the embedding table is only gathered, so it is left out), so the ceiling is
copy bandwidth ÷ weight bytes steps/s; "roofline" = achieved steps/CPU-s ÷ that ceiling.
Copy bandwidth = 2 × bytes ÷ CPU time of a large tensor copy (read + write), best of copies taken
between the timed runs (on a shared machine the quiet moments count for all).

--agreement CKPT (default: the shipped demo planner) measures what int8 and bf16 cost in accuracy:
greedy continuations of the first planner prompts of --agreement-n GSM8K questions, compared token
for token with fp32 on the same trained weights.
"""
import argparse
import sys
import time
from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lumos.model import ModelArgs, Transformer, decode_tokens  # noqa: E402
from lumos.model.checkpoint import meta_to_hf_name, permute_meta_to_hf  # noqa: E402
from lumos.model.quantize import to_decode_layout  # noqa: E402
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
OURS = ("fp32 nn.Linear", "fp32", "fp32 packed", "bf16", "int8")  # our variants; HF runs "HF fp32" and "HF bf16"
BYTES = {"fp32 nn.Linear": 4, "fp32": 4, "fp32 packed": 4, "bf16": 2, "int8": 1, "HF fp32": 4, "HF bf16": 2}  # per streamed weight


def copy_bandwidth(nbytes: int = 512 << 20, repeats: int = 5) -> float:
    """Bytes per CPU-second of a big memory-to-memory copy (counting read and write), best of `repeats`.
    CPU time, like the tokens/CPU-s it is compared with: time spent descheduled does not count."""
    a = torch.ones(nbytes // 4)
    b = torch.empty_like(a)
    best = float("inf")
    for _ in range(repeats):
        t = time.process_time()
        b.copy_(a)
        best = min(best, time.process_time() - t)
    return 2 * nbytes / best


def hf_twin(model: Transformer) -> LlamaForCausalLM:
    """An HF LlamaForCausalLM holding exactly our weights (q/k rows permuted to HF's layout)."""
    args = model.args
    hf = LlamaForCausalLM(LlamaConfig(**args.to_hf_config("float32")))
    sd = {}
    for name, w in model.state_dict().items():
        heads = {"wq": args.n_heads, "wk": args.kv_heads}.get(name.split(".")[-2])
        sd[meta_to_hf_name(name)] = permute_meta_to_hf(w, heads) if heads else w
    hf.load_state_dict(sd, strict=True)
    return hf.eval()


def timed(fn):
    """(wall seconds, CPU seconds of this process, result). CPU time is the steadier number on
    a shared machine: time spent descheduled does not count (cache and bandwidth sharing still do)."""
    t, c = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - t, time.process_time() - c, out


def time_ours(model, prompts, n):
    wall, cpu, (out, _) = timed(lambda: decode_tokens(model, prompts, n, eos_id=None))
    assert all(len(o) == n for o in out)
    return wall, cpu, out


@torch.inference_mode()
def time_hf(hf, prompts, n):
    ids = torch.tensor(prompts)  # equal lengths: no padding needed
    wall, cpu, out = timed(lambda: hf.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n,
                                               do_sample=False, eos_token_id=None, pad_token_id=0))
    return wall, cpu, out[:, ids.shape[1]:].tolist()


def our_variant(base: Transformer, variant: str) -> Transformer:
    """A copy of `base` as `variant` (one of OURS)."""
    m = Transformer(base.args).eval()
    m.load_state_dict(base.state_dict())
    if variant == "bf16":
        return m.to(torch.bfloat16)
    return m if variant == "fp32 nn.Linear" else to_decode_layout(m, int8=variant == "int8", packed=variant == "fp32 packed")


def agreement(ckpt: str, n: int, new_tokens: int) -> None:
    """Greedy agreement of int8, bf16 and nn.Linear fp32 with fp32 (packed, as run_agent.py runs it) on a
    trained model's first planner prompts."""
    from lumos.agent.planner import plan_prompt_first
    from lumos.agent.tasks import load_task
    from lumos.model.checkpoint import load_model
    from lumos.model.tokenizer import load_tokenizer
    tok = load_tokenizer(ckpt)
    base = load_model(ckpt, dtype="float32", n_words=tok.n_words).eval()
    prompts = [tok.encode(plan_prompt_first(e.question), bos=tok.add_bos) for e in load_task("gsm8k", n)]
    ref, _ = decode_tokens(our_variant(base, "fp32 packed"), prompts, new_tokens, eos_id=None)
    print(f"\ngreedy agreement with fp32: {Path(ckpt).name}, first planner prompts of {n} GSM8K questions, "
          f"{new_tokens} new tokens (EOS ignored)")
    print("| variant | identical continuations | tokens before the first difference (mean share) |\n|---|---|---|")
    for variant in ("int8", "bf16", "fp32 nn.Linear"):
        got, _ = decode_tokens(our_variant(base, variant), prompts, new_tokens, eos_id=None)
        same = sum(g == r for g, r in zip(got, ref))
        prefix = [next((i for i, (a, b) in enumerate(zip(g, r)) if a != b), len(r)) / len(r) for g, r in zip(got, ref)]
        print(f"| {variant} | {same}/{n} | {sum(prefix) / n:.3f} |")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dim", type=int, default=768)
    p.add_argument("--n-layers", type=int, default=8)
    p.add_argument("--n-heads", type=int, default=12)
    p.add_argument("--n-kv-heads", type=int, default=None)
    p.add_argument("--vocab-size", type=int, default=32000)
    p.add_argument("--variants", default=",".join(OURS) + ",HF fp32,HF bf16",
                   help="comma list of: " + ", ".join(OURS) + ", HF fp32, HF bf16")
    p.add_argument("--batches", default="1,8", help="comma list of batch sizes")
    p.add_argument("--prompt-len", type=int, default=32)
    p.add_argument("--new-tokens", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--checkpoint", help="time these weights (a checkpoint directory, or 'smollm2' for the pretrained "
                   "base) instead of a random model of --dim/--n-layers/...")
    p.add_argument("--agreement", default=str(ROOT / "checkpoints/lumos-demo-plan"),
                   help="trained checkpoint for the greedy-agreement table ('' to skip)")
    p.add_argument("--agreement-n", type=int, default=64, help="GSM8K questions for the agreement table")
    p.add_argument("--agreement-tokens", type=int, default=48, help="new tokens per agreement prompt")
    a = p.parse_args()
    variants = [v.strip() for v in a.variants.split(",")]
    if bad := [v for v in variants if v not in BYTES]:
        p.error(f"unknown variant(s) {bad}")
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    if a.checkpoint:
        from lumos.model import smollm2
        from lumos.model.checkpoint import load_model
        base = load_model(smollm2.resolve(a.checkpoint) or a.checkpoint).eval()
        args = base.args
    else:
        args = ModelArgs(dim=a.dim, n_layers=a.n_layers, n_heads=a.n_heads, n_kv_heads=a.n_kv_heads,
                         vocab_size=a.vocab_size, max_seq_len=a.prompt_len + a.new_tokens)
        base = Transformer(args).init_weights(seed=0).eval()
    n_params = sum(p.numel() for p in base.parameters())
    # the embedding table is only gathered, unless it is also the output matrix (tied)
    n_streamed = n_params - (0 if args.tie_word_embeddings else base.tok_embeddings.weight.numel())
    bw = copy_bandwidth()
    print(f"model: {n_params / 1e6:.1f}M params ({n_streamed / 1e6:.1f}M streamed per step), "
          f"dim {args.dim}, {args.n_layers} layers; threads {torch.get_num_threads()}; "
          f"copy bandwidth {bw / 1e9:.1f} GB/s; prompt {a.prompt_len}, {a.new_tokens} new tokens")
    g = torch.Generator().manual_seed(1)
    models = {v: (hf_twin(base).to(DTYPES[v[3:]]) if v.startswith("HF") else our_variant(base, v)) for v in variants}
    rows = {}
    for B in (int(b) for b in a.batches.split(",")):
        prompts = torch.randint(3, args.vocab_size, (B, a.prompt_len), generator=g).tolist()
        best, outs = {}, {}
        for v, m in models.items():  # warm up every variant
            (time_hf if v.startswith("HF") else time_ours)(m, prompts, 4)
        for _ in range(a.repeats):
            bw = max(bw, copy_bandwidth(repeats=2))
            for v, m in models.items():
                wall, cpu, out = (time_hf if v.startswith("HF") else time_ours)(m, prompts, a.new_tokens)
                w0, c0 = best.get(v, (float("inf"), float("inf")))
                best[v], outs[v] = (min(w0, wall), min(c0, cpu)), out
        for v in models:
            tps = [B * a.new_tokens / t for t in best[v]]  # [wall, cpu] tokens/s
            rows[(v, B)] = (tps, outs[v])
            print(f"  {v} batch {B}: {tps[0]:.1f} tok/s ({tps[1]:.1f} per CPU-s)", flush=True)
    print(f"\ncopy bandwidth (best seen): {bw / 1e9:.1f} GB/s; roofline = weight bytes x steps per CPU-second / bandwidth; "
          "x HF: tokens per CPU-second over HF fp32's (bf16: over HF bf16's)")
    print("| variant | batch | tok/s | tok/CPU-s | x HF fp32 (CPU) | x HF (wall) | roofline | same tokens as fp32 |")
    print("|---|---|---|---|---|---|---|---|")
    for (v, B), ((tw, tc), out) in rows.items():
        ref = rows.get(("HF bf16" if v.endswith("bf16") else "HF fp32", B))
        vs = f"{tc / ref[0][1]:.2f}x" if ref else "—"
        vw = f"{tw / ref[0][0]:.2f}x" if ref else "—"
        fp = rows.get(("fp32 packed", B)) or rows.get(("fp32", B)) or rows.get(("fp32 nn.Linear", B))
        same = f"{sum(x == y for x, y in zip(out, fp[1]))}/{B}" if fp else "—"
        roof = n_streamed * BYTES[v] * (tc / B) / bw
        print(f"| {v} | {B} | {tw:.1f} | {tc:.1f} | {vs} | {vw} | {roof:.0%} | {same} |")
    if a.agreement:
        agreement(a.agreement, a.agreement_n, a.agreement_tokens)

if __name__ == "__main__":
    main()
