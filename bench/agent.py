"""Benchmark: GSM8K examples/minute of the batched Lumos-I agent, before and after this repo's speed-ups.

    python bench/agent.py                        # the shipped demo models, 64 questions, 32 in flight
    python bench/agent.py --repeats 3 --threads 1 --n 96
    python bench/agent.py --planner gold --grounder checkpoints/lumos-demo-ground   # the grounder alone
    python bench/agent.py --one-at-a-time        # also the loop with one example in flight (slow)

All modes run lumos.agent.Agent on the same models and questions in one process, with the agent's
measured per-turn budgets (lumos.agent.budget) and `--batch-size` examples in flight:

  before          no KV reuse, nn.Linear weights: what every turn cost before issue 16
  + KV reuse      each conversation's keys/values kept across turns, the instruction computed once
  + decode layout also the fp32 weights stored transposed (lumos/model/quantize.py): the default
  int8            int8 weights, per-channel scales, with KV reuse (`run_agent.py --dtype int8`)

Prefill tokens per example (tokens run through the model before decoding: exact, not noisy) lead;
examples/minute is wall-clock, best of --repeats (modes alternate, so a busy moment hurts all alike),
with the spread. "same trace" compares every prompt, generation and finish reason with "before".
"""
import argparse
import os
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lumos.agent.agent import Agent  # noqa: E402
from lumos.agent.backends import GoldBackend, LocalBackend, load_gold  # noqa: E402
from lumos.agent.budget import budget  # noqa: E402
from lumos.agent.executor import maths_executor  # noqa: E402
from lumos.agent.tasks import load_task, score  # noqa: E402
from lumos.model.checkpoint import load_model  # noqa: E402


def trace(ep) -> tuple:
    """What must not change between modes: every step's prompt, generation and finish reason."""
    return ep.id, ep.prediction, ep.failure, [(s["prompt"], s["generation"], s["finish_reason"]) for s in ep.steps]


def backends(spec: str, mode: str, cache: dict):
    """A LocalBackend for checkpoint `spec` configured as `mode`; 'gold' replays gold subgoals."""
    if spec == "gold":
        from lumos.annotations.prepare import ensure_prepared, gold_path
        ensure_prepared(ROOT / "data", quiet=True)
        return GoldBackend(load_gold(gold_path(ROOT / "data")), "planner", "iterative")
    if (spec, mode) not in cache:
        b = LocalBackend(spec, dtype="int8" if mode == "int8" else "float32",
                         kv_reuse_bytes=0 if mode == "before" else 4 << 30)
        if mode in ("before", "+ KV reuse"):  # the weights as loaded (nn.Linear), not the decode layout
            b.model = load_model(str(b.path), dtype="float32", n_words=b.tokenizer.n_words).eval()
        cache[(spec, mode)] = b
    b = cache[(spec, mode)]
    b.stats = dict.fromkeys(b.stats, 0)
    if b.prefix_cache is not None:  # every repeat starts cold: no keys/values from the last one
        b.prefix_cache = type(b.prefix_cache)(b.prefix_cache.max_bytes)
    return b


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--planner", default=str(ROOT / "checkpoints/lumos-demo-plan"),
                   help="checkpoint directory, or 'gold' (replay gold subgoals: only the grounder decodes)")
    p.add_argument("--grounder", default=str(ROOT / "checkpoints/lumos-demo-ground"), help="checkpoint directory")
    p.add_argument("--n", type=int, default=64, help="GSM8K test questions (default 64)")
    p.add_argument("--batch-size", type=int, default=32, help="examples in flight (default 32)")
    p.add_argument("--modes", default="before,+ KV reuse,+ decode layout,int8",
                   help="comma list of: before, + KV reuse, + decode layout, int8")
    p.add_argument("--repeats", type=int, default=1, help="runs of every mode, alternating (default 1)")
    p.add_argument("--one-at-a-time", action="store_true", help="also time 'before' with 1 example in flight")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    a = p.parse_args()
    modes = [m.strip() for m in a.modes.split(",")]
    if bad := [m for m in modes if m not in ("before", "+ KV reuse", "+ decode layout", "int8")]:
        p.error(f"unknown mode(s) {bad}")
    if a.n < 1 or a.batch_size < 1 or a.repeats < 1:
        p.error("--n, --batch-size and --repeats must be positive")
    if a.threads:
        torch.set_num_threads(a.threads)
    limits = budget("maths", "iterative")
    examples = load_task("gsm8k", a.n)
    runs = [(m, a.batch_size) for m in modes] + ([("before", 1)] if a.one_at_a_time else [])
    cache, results = {}, {}
    for rep in range(a.repeats + 1):  # round 0 warms up (allocator, stop-token tables) on 2 questions
        for mode, bs in runs:
            plan, ground = backends(a.planner, mode, cache), backends(a.grounder, mode, cache)
            agent = Agent(plan, ground, maths_executor(), max_new_tokens={k: limits[k] for k in ("planner", "grounder")},
                          max_example_tokens=limits["example"])
            todo = examples[:2] if rep == 0 else examples
            t0 = time.perf_counter()
            eps = sorted(agent.run(todo, batch_size=bs), key=lambda e: e.id)
            secs = time.perf_counter() - t0
            if rep == 0:
                continue
            r = results.setdefault((mode, bs), {"secs": [], "eps": eps})
            r["secs"].append(secs)
            r["prefill"] = {m: (b.prefill_tokens() if isinstance(b, LocalBackend) else 0) for m, b in
                            (("planner", plan), ("grounder", ground))}
            r["prompt"] = {m: (b.stats["prompt_tokens"] if isinstance(b, LocalBackend) else 0) for m, b in
                           (("planner", plan), ("grounder", ground))}
            print(f"  {mode} (batch {bs}) run {rep}: {secs:.1f} s", flush=True)
    base = results.get(("before", a.batch_size))
    load = os.getloadavg()
    print(f"\n{a.n} GSM8K questions, Lumos-I, planner {Path(a.planner).name}, grounder {Path(a.grounder).name}, "
          f"{torch.get_num_threads()} threads, load average {load[0]:.1f} / {load[1]:.1f} (1 / 5 min)")
    print("| mode | in flight | planner prefill tok/example | grounder prefill tok/example | examples/min (best) "
          "| spread | accuracy | same trace as before |")
    print("|---|---|---|---|---|---|---|---|")
    for (mode, bs), r in results.items():
        epm = [a.n / s * 60 for s in r["secs"]]
        acc = sum(score("gsm8k", e.prediction, e.gold)["correct"] for e in r["eps"]) / a.n
        same = "—" if base is None or r is base else \
            f"{sum(trace(x) == trace(y) for x, y in zip(r['eps'], base['eps']))}/{a.n}"
        print(f"| {mode} | {bs} | {r['prefill']['planner'] / a.n:.1f} | {r['prefill']['grounder'] / a.n:.1f} "
              f"| {max(epm):.1f} | {min(epm):.1f}–{max(epm):.1f} | {acc:.4f} | {same} |")
    if base:
        print(f"prompt tokens per example (what 'before' prefills): planner {base['prompt']['planner'] / a.n:.1f}, "
              f"grounder {base['prompt']['grounder'] / a.n:.1f}")
        b = max(a.n / s * 60 for s in base["secs"])
        for (mode, bs), r in results.items():
            if r is not base and bs == a.batch_size:
                ratio = [f"{r['prefill'][m] and base['prefill'][m] / r['prefill'][m]:.2f}x" for m in ("planner", "grounder")]
                print(f"{mode}: prefill tokens down {ratio[0]} (planner) / {ratio[1]} (grounder); "
                      f"examples/min {max(a.n / s * 60 for s in r['secs']) / b:.2f}x of before (best vs best)")


if __name__ == "__main__":
    main()
