"""Decode speed: our KV-cached greedy decoding vs transformers' generate, same weights, one process.

    python bench/decode.py                      # ~106M-param Llama, fp32 + bf16, batch 1 + 8
    python bench/decode.py --dtypes fp32 --batches 1 --new-tokens 32

For each (dtype, batch) both decoders generate --new-tokens greedy tokens (EOS ignored) after a
--prompt-len prompt, alternating ours/HF --repeats times; the best time of each counts, so a
momentarily busy machine hurts both sides alike. Roofline: a decode step must stream every weight
matrix once (the embedding table is only gathered, so it is left out), so the ceiling is
copy bandwidth ÷ weight bytes steps/s; "roofline" = achieved steps/s ÷ that ceiling.
Copy bandwidth = 2 × bytes ÷ time of a large tensor copy (read + write), best of copies taken
between the timed runs (on a shared machine the quiet moments count for both).
"""
import argparse
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from lumos.model import ModelArgs, Transformer, decode_tokens
from lumos.model.checkpoint import meta_to_hf_name, permute_meta_to_hf

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def copy_bandwidth(nbytes: int = 512 << 20, repeats: int = 5) -> float:
    """Bytes/s of a big memory-to-memory copy (counting read and write), best of `repeats`."""
    a = torch.ones(nbytes // 4)
    b = torch.empty_like(a)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        b.copy_(a)
        best = min(best, time.perf_counter() - t)
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


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dim", type=int, default=768)
    p.add_argument("--n-layers", type=int, default=8)
    p.add_argument("--n-heads", type=int, default=12)
    p.add_argument("--n-kv-heads", type=int, default=None)
    p.add_argument("--vocab-size", type=int, default=32000)
    p.add_argument("--dtypes", default="fp32,bf16", help="comma list of fp32, bf16")
    p.add_argument("--batches", default="1,8", help="comma list of batch sizes")
    p.add_argument("--prompt-len", type=int, default=32)
    p.add_argument("--new-tokens", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    args = ModelArgs(dim=a.dim, n_layers=a.n_layers, n_heads=a.n_heads, n_kv_heads=a.n_kv_heads,
                     vocab_size=a.vocab_size, max_seq_len=a.prompt_len + a.new_tokens)
    base = Transformer(args).init_weights(seed=0).eval()
    n_params = sum(p.numel() for p in base.parameters())
    n_streamed = n_params - base.tok_embeddings.weight.numel()
    bw = copy_bandwidth()
    print(f"model: {n_params / 1e6:.1f}M params ({n_streamed / 1e6:.1f}M streamed per step), "
          f"dim {args.dim}, {args.n_layers} layers; threads {torch.get_num_threads()}; "
          f"copy bandwidth {bw / 1e9:.1f} GB/s; prompt {a.prompt_len}, {a.new_tokens} new tokens")
    g = torch.Generator().manual_seed(1)
    rows = []
    for dname in a.dtypes.split(","):
        ours = Transformer(args).eval()
        ours.load_state_dict(base.state_dict())
        ours.to(DTYPES[dname])
        hf = hf_twin(base).to(DTYPES[dname])
        for B in (int(b) for b in a.batches.split(",")):
            prompts = torch.randint(3, args.vocab_size, (B, a.prompt_len), generator=g).tolist()
            time_ours(ours, prompts, 4), time_hf(hf, prompts, 4)  # warm up both
            best = {"ours": [float("inf")] * 2, "hf": [float("inf")] * 2}  # best (wall, cpu) seconds
            outs = {}
            for _ in range(a.repeats):
                bw = max(bw, copy_bandwidth(repeats=2))
                for side, fn, m in (("ours", time_ours, ours), ("hf", time_hf, hf)):
                    wall, cpu, out = fn(m, prompts, a.new_tokens)
                    best[side] = [min(best[side][0], wall), min(best[side][1], cpu)]
                    outs[side] = out
            same = sum(x == y for x, y in zip(outs["ours"], outs["hf"]))
            tps = {side: [B * a.new_tokens / t for t in best[side]] for side in best}  # [wall, cpu] tok/s
            rows.append((dname, B, tps["ours"], tps["hf"], f"{same}/{B}"))
            print(f"  {dname} batch {B}: ours {tps['ours'][0]:.1f} tok/s ({tps['ours'][1]:.1f} per CPU-s), "
                  f"HF {tps['hf'][0]:.1f} ({tps['hf'][1]:.1f})", flush=True)
    print(f"\ncopy bandwidth (best seen): {bw / 1e9:.1f} GB/s; roofline = weight bytes x steps per CPU-second / bandwidth")
    print("| dtype | batch | ours tok/s | HF tok/s | ours/HF | ours tok/CPU-s | HF tok/CPU-s | ours/HF (CPU) "
          "| ours roofline | HF roofline | same tokens as HF |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for d, B, (ow, oc), (hw, hc), same in rows:
        roof = lambda tps: n_streamed * DTYPES[d].itemsize * (tps / B) / bw  # noqa: E731
        print(f"| {d} | {B} | {ow:.1f} | {hw:.1f} | {ow / hw:.2f}x | {oc:.1f} | {hc:.1f} | {oc / hc:.2f}x "
              f"| {roof(oc):.0%} | {roof(hc):.0%} | {same} |")


if __name__ == "__main__":
    main()
