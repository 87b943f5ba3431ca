"""Benchmark: examples/minute of the batched agent loop vs the same loop one example at a time.

    python bench/agent.py                                   # a random Llama (dim 256, 4 layers), GSM8K questions
    python bench/agent.py --planner runs/plan --grounder runs/ground --n 64 --max-new-tokens 512

Both modes run lumos.agent.Agent on the same model and the same questions in one process; the only
difference is how many examples are in flight (--batch-size vs 1), i.e. how many rows each planner /
grounder decode carries. With the default random model every example ends after its first planner turn
(random text has no "Subgoal k:"), so the run times the planner's decode of max-new-tokens tokens per
example: the part batching speeds up. Pass trained checkpoints to time whole Lumos-I episodes.
"""
import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lumos.agent.agent import Agent  # noqa: E402
from lumos.agent.backends import LocalBackend  # noqa: E402
from lumos.agent.executor import maths_executor  # noqa: E402
from lumos.agent.tasks import load_task  # noqa: E402


def random_checkpoint(out: Path, dim: int, n_layers: int) -> Path:
    from lumos.model.checkpoint import save_hf
    from lumos.model.config import ModelArgs
    from lumos.model.llama import Transformer
    args = ModelArgs(dim=dim, n_layers=n_layers, n_heads=dim // 32, vocab_size=32000, max_seq_len=2048)
    with torch.device("meta"):
        model = Transformer(args)
    model.to_empty(device="cpu").init_weights(seed=0)
    save_hf(model, args, out, tokenizer=ROOT / "data/tokenizer/llama2.model")
    n = sum(p.numel() for p in model.parameters())
    print(f"random Llama: dim {dim}, {n_layers} layers, {n / 1e6:.1f}M parameters (untied 32000-row vocabulary)")
    return out


def run(planner, grounder, examples, batch_size: int) -> tuple[float, int, int]:
    agent = Agent(planner, grounder, maths_executor())
    t0 = time.perf_counter()
    eps = list(agent.run(examples, batch_size=batch_size))
    return time.perf_counter() - t0, len(eps), sum(e.n_tokens for e in eps)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--planner", help="checkpoint directory, or 'gold' to replay GSM8K gold subgoals so that only the "
                   "grounder decodes (default: a random Llama made here)")
    p.add_argument("--grounder", help="checkpoint directory (default: the planner)")
    p.add_argument("--n", type=int, default=64, help="GSM8K test questions")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    tmp = tempfile.TemporaryDirectory()
    plan_path = a.planner or str(random_checkpoint(Path(tmp.name), a.dim, a.layers))
    kw = dict(device=a.device, dtype=a.dtype, max_new_tokens=a.max_new_tokens)
    if plan_path == "gold":
        from lumos.agent.backends import GoldBackend, load_gold
        from lumos.annotations.prepare import ensure_prepared, gold_path
        ensure_prepared(ROOT / "data", quiet=True)
        planner = GoldBackend(load_gold(gold_path(ROOT / "data")), "planner", "iterative")
        if not a.grounder:
            p.error("--planner gold needs --grounder DIR")
    else:
        planner = LocalBackend(plan_path, batch_size=a.batch_size, **kw)
    grounder = planner if (a.grounder or plan_path) == plan_path else LocalBackend(a.grounder, batch_size=a.batch_size, **kw)
    examples = load_task("gsm8k", a.n)
    run(planner, grounder, examples[:2], 2)  # warm-up: allocator, stop-token table
    rows = []
    for mode, bs in (("one at a time", 1), (f"batched ({a.batch_size} in flight)", a.batch_size)):
        secs, n, toks = run(planner, grounder, examples, bs)
        rows.append((mode, n, secs, n / secs * 60, toks / secs))
    print(f"\n{a.n} GSM8K questions, max {a.max_new_tokens} new tokens per turn, device {a.device}, {a.dtype}, "
          f"{torch.get_num_threads()} threads")
    print(f"| mode | examples | seconds | examples/minute | tokens/s |\n|---|---|---|---|---|")
    for mode, n, secs, epm, tps in rows:
        print(f"| {mode} | {n} | {secs:.1f} | {epm:.1f} | {tps:.0f} |")
    print(f"speed-up: {rows[1][3] / rows[0][3]:.2f}x examples/minute")


if __name__ == "__main__":
    main()
