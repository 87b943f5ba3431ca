"""Full fine-tuning vs LoRA vs LoRA with the shared prefix: training tokens/s of the same model on the
same Lumos batches.

One process, CPU, fp32. Each round runs one optimizer step of each mode on the same global batch
of real conversations (length-grouped by the trainer's sampler, micro-batches as train.py cuts
them): forward_backward -> clip -> AdamW -> zero grads. Rounds alternate so machine load hits
all alike; median tokens/s (real, unpadded tokens) per mode is reported. "lora + shared prefix" runs
each micro-batch's common prefix (grounding's ~170-token instructions) once (lumos/train/shared_prefix.py).

    python bench/train_lora.py --init smollm2 --threads 2          # the pretrained base (cache)
    python bench/train_lora.py                                      # a random model of SmolLM2-135M's shape
"""
import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lumos.model.config import ModelArgs  # noqa: E402
from lumos.train.data import StepSampler, collate  # noqa: E402
from lumos.train.distributed import Dist  # noqa: E402
from lumos.train.trainer import TrainConfig, build_model, forward_backward, load_dataset  # noqa: E402

# SmolLM2-135M's architecture (its config.json): what the random stand-in is built as.
SMOLLM2 = dict(dim=576, n_layers=30, n_heads=9, n_kv_heads=3, vocab_size=49152, ffn_hidden_dim=1536,
               rope_theta=100000.0, max_seq_len=2048, tie_word_embeddings=True)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--init", help="base checkpoint directory (or 'smollm2'); default: random SmolLM2-135M shape "
                                  "with the Llama-2 tokenizer")
    p.add_argument("--data", default=str(ROOT / "data/annotations/lumos_maths_ground_iterative.jsonl"))
    p.add_argument("--global-batch", type=int, default=16)
    p.add_argument("--micro", type=int, default=4)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--rank", type=int, default=16)
    p.add_argument("--targets", default="wq,wk,wv,wo,w1,w2,w3")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--modes", default="full,lora,lora+shared", help="which of full, lora, lora+shared to time")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    d = Dist(0, 1, 0, 1, torch.device("cpu"), None)

    init, tokenizer = a.init, str(ROOT / "data/tokenizer/llama2.model")
    if init == "smollm2":
        from lumos.model.smollm2 import ensure_base
        init = str(ensure_base())
    if init:
        tokenizer = init
    common = dict(data=a.data, out="", tokenizer=tokenizer, init=init,
                  model_args=None if init else SMOLLM2, seed=0)
    from lumos.model.tokenizer import load_tokenizer
    tok = load_tokenizer(tokenizer)
    data = load_dataset(TrainConfig(**common), tok)
    sampler = StepSampler(data.lengths, a.global_batch, a.micro, 1, seed=0)
    pad = tok.pad_id if tok.pad_id >= 0 else tok.eos_id

    lora = TrainConfig(**common, lora_rank=a.rank, lora_targets=tuple(a.targets.split(",")))
    modes = {"full": (TrainConfig(**common), False), "lora": (lora, False), "lora+shared": (lora, True)}
    modes = {name: modes[name] for name in a.modes.split(",")}
    runs = {}
    for name, (cfg, shared) in modes.items():
        model, _ = build_model(cfg, d, torch.float32)
        model.train()
        trainable = [q for q in model.parameters() if q.requires_grad]
        runs[name] = (model, trainable, torch.optim.AdamW(trainable, lr=1e-5), [], shared)
        print(f"{name}: {sum(q.numel() for q in trainable) / 1e6:.2f}M trainable of "
              f"{sum(q.numel() for q in model.parameters()) / 1e6:.1f}M", flush=True)
    for step in range(a.rounds):
        idx = sampler.global_batch_indices(step)
        n_lab, n_tok = int(data.n_labels[idx].sum()), int(data.lengths[idx].sum())
        batches = [collate(data, i, pad) for i in sampler.micro_batches(step, 0)]
        for name, (model, trainable, opt, tps, shared) in runs.items():
            t = time.perf_counter()
            loss = forward_backward(model, batches, n_lab, torch.autocast("cpu", enabled=False), shared)
            torch.nn.utils.clip_grad_norm_(trainable, 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            tps.append(n_tok / (time.perf_counter() - t))
            print(f"round {step + 1} {name}: {n_tok} tokens, loss {loss.item():.4f}, {tps[-1]:.1f} tok/s", flush=True)
    med = {name: statistics.median(r[3]) for name, r in runs.items()}
    ratios = [f"{b}/{a} {med[b] / med[a]:.2f}x" for a, b in (("full", "lora"), ("lora", "lora+shared"))
              if a in med and b in med]
    print(" | ".join([f"{k}: median {v:.1f} tok/s" for k, v in med.items()] + ratios))


if __name__ == "__main__":
    main()
