"""Our Llama vs transformers' LlamaForCausalLM on the converted SmolLM2-135M-Instruct (fp32, same weights).

    python scripts/smollm2_parity.py [--n 20] [--new-tokens 32]

For each of --n GSM8K test questions, as a ChatML chat prompt and as the Lumos planner prompt, plus a few
short texts: the worst relative logit difference max|ours - HF| / max|HF|, the share of positions with the
same argmax, and whether greedy generation (--new-tokens, through our KV cache vs HF's generate) gives
the same tokens. Prints one line per kind and the chat answer to the first question.
"""
import argparse
import json
from pathlib import Path

import torch
from transformers import LlamaForCausalLM

from lumos import prompts as P
from lumos.model.checkpoint import load_model
from lumos.model.generate import generate
from lumos.model.smollm2 import ensure_base
from lumos.model.tokenizer import load_tokenizer

ROOT = Path(__file__).resolve().parents[1]
CHAT = "<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=20, help="GSM8K test questions (default 20)")
    p.add_argument("--new-tokens", type=int, default=32, help="greedy tokens compared per prompt (default 32)")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    d = str(ensure_base())
    ours, tok = load_model(d).eval(), load_tokenizer(d)
    hf = LlamaForCausalLM.from_pretrained(d, dtype=torch.float32).eval()
    qs = [json.loads(line)["question"] for line in (ROOT / "data/gsm8k/test.jsonl").read_text().splitlines()[:a.n]]
    kinds = {"short text": ["The capital of France is", "Hello", "1 + 1 = 2, 2 + 2 ="],
             "chat": [CHAT.format(q) for q in qs],
             "Lumos planner": [P.chat_prompt(P.plan_user_first(q)) for q in qs]}
    for kind, texts in kinds.items():
        worst, same, total, lens, identical = 0.0, 0, 0, [], 0
        for text in texts:
            ids = torch.tensor([tok.encode(text)])
            lens.append(ids.shape[1])
            with torch.no_grad():
                x, y = ours(ids).float(), hf(ids).logits.float()
                ref = hf.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=a.new_tokens,
                                  do_sample=False, eos_token_id=tok.eos_id, pad_token_id=tok.eos_id)
            worst = max(worst, ((x - y).abs().max() / y.abs().max()).item())
            same += (x.argmax(-1) == y.argmax(-1)).sum().item()
            total += ids.shape[1]
            g = generate(ours, tok, [text], max_new_tokens=a.new_tokens, stop=())[0]
            identical += g.tokens == ref[0, ids.shape[1]:].tolist()
        print(f"{kind}: {len(texts)} prompts of {min(lens)}-{max(lens)} tokens; worst rel. logit diff {worst:.2e}; "
              f"argmax same {same}/{total}; greedy {a.new_tokens} tokens identical {identical}/{len(texts)}", flush=True)
    g = generate(ours, tok, [kinds["chat"][0]], max_new_tokens=200, stop=())[0]
    print(f"\nchat, greedy: {qs[0]!r}\n-> {g.text!r} ({g.finish_reason})")


if __name__ == "__main__":
    main()
