"""Fuzz the executor with groundings a broken or hostile grounder could write, and report what the
README's reliability section quotes: actions run, exceptions that escaped Executor.run (must be 0),
the slowest action and the slowest grounding, results bound over the size budget (must be 0).

    python scripts/fuzz_actions.py --n 20000            # maths tools (the maths_executor budgets)
    python scripts/fuzz_actions.py --n 5000 --family complex_qa

Groundings mix the paper's action forms with huge exponents and factorials, deep nesting, nan/inf,
lone surrogates and other odd Unicode, undefined R_j, wrong arities, quotes, code, and long strings.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from lumos.agent.executor import maths_executor, qa_executor  # noqa: E402

ODD = ["nan", "inf", "-inf", "oo", "\ud83d", "\udc80", "\u202e", "\x00", "😀", "ℵ", "½", "²", "∞", "1e309", "0x1f",
       "__import__('os')", "os.system('id')", "lambda: 0", "'", '"', "\\", "{", "}", "[", "]", ";", "\n", "=", "==",
       "R0", "R999", "R1(2, 3)", "Env", "x", "xy", "pi", "e", "$5", "1,000", "40%", "3!", "1000!", "9**9**9",
       "((x+1)^32)^32", "(x+y)^40", "2^100000", "10^3000", "factorial(10000)", "comb(10000, 5000)", "sqrt(-1)",
       "log(0)", "1/0", "0^0", "round(1.5, 99)", "max()", "gcd(1)", "If 1 > 0, 2, 3", "if x then y else z"]
TOOLS = {"maths": ["Calculator", "SetEquation", "SolveEquation", "Define", "Count", "SolveInequality", "Code", "Nope"],
         "complex_qa": ["KnowledgeQuery", "ParagraphRetrieve", "QA", "Calculator", "Code", "Nope"]}


def formula(rng: random.Random, depth: int = 0) -> str:
    """A random formula-ish string: real syntax most of the time, junk some of the time."""
    r = rng.random()
    if depth > 4 or r < 0.3:
        return rng.choice(ODD) if rng.random() < 0.4 else str(rng.choice([0, 1, 2, 7, 12, 10 ** rng.randint(1, 40)]))
    if r < 0.6:
        return f"{formula(rng, depth + 1)} {rng.choice(['+', '-', '*', '/', '^', '//', '%', '<', '=', ','])} {formula(rng, depth + 1)}"
    if r < 0.75:
        return "(" * rng.randint(1, 80) + formula(rng, depth + 1) + ")" * rng.randint(0, 80)
    if r < 0.9:
        return f"{rng.choice(['sqrt', 'factorial', 'log', 'max', 'comb', 'round', 'exp', 'foo'])}({formula(rng, depth + 1)})"
    return rng.choice(ODD) * rng.randint(1, 3000)


def grounding(rng: random.Random, family: str) -> str:
    """One to four actions, each `R_k = Tool(args)` or a broken variant of it."""
    actions = []
    for k in range(1, rng.randint(1, 4) + 1):
        tool, args = rng.choice(TOOLS[family]), formula(rng)
        if tool in ("ParagraphRetrieve", "QA") and rng.random() < 0.7:
            args = f"R{rng.randint(1, 3)}, Query: {args}" if tool == "ParagraphRetrieve" else f"[R{rng.randint(1, 3)}], Question: {args}"
        form = rng.random()
        if form < 0.8:
            actions.append(f"R{k} = {tool}({args})")
        elif form < 0.9:
            actions.append(f"Action {k}-1: R{k}, R{k + 9} = {tool}({args}) = {formula(rng)}")
        else:
            actions.append(rng.choice([f"R{k} = {tool}({args}", f"{tool} {args}", f"R{k} = {tool}({args}) junk", args]))
    return rng.choice(["; ", "\n", ";"]).join(actions)


def make_executor(family: str):
    if family == "maths":
        return maths_executor()
    from lumos.tools.qa import KnowledgeQuery
    corpus = Path(tempfile.mkdtemp())
    (corpus / "Julius Caesar.txt").write_text("Julius Caesar was a Roman general.\nCaesar had three children.\n")
    return qa_executor(lambda q, paragraphs: (q + " ".join(paragraphs))[:50], knowledge=KnowledgeQuery(corpus_dir=corpus))


def fuzz(n_actions: int, family: str = "maths", seed: int = 0, progress: bool = False) -> dict:
    """Run groundings until n_actions actions ran; -> the figures (see the module docstring)."""
    rng, executor = random.Random(seed), make_executor(family)
    stats = {"family": family, "seed": seed, "groundings": 0, "actions": 0, "errors": 0, "uncaught": 0,
             "max_action_s": 0.0, "max_grounding_s": 0.0, "oversize_results": 0, "uncaught_examples": []}
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=n_actions, unit="action")
    while stats["actions"] < n_actions:
        g, env = grounding(rng, family), {}
        t = time.perf_counter()
        try:
            records = executor.run(g, env)
        except BaseException as err:   # the point of the fuzz: count it, keep going
            if isinstance(err, KeyboardInterrupt):
                raise
            stats["uncaught"] += 1
            stats["uncaught_examples"].append(f"{type(err).__name__}: {str(err)[:100]} <- {g[:100]!r}")
            continue
        finally:
            stats["max_grounding_s"] = max(stats["max_grounding_s"], time.perf_counter() - t)
            stats["groundings"] += 1
        stats["actions"] += len(records)
        stats["errors"] += sum(r.error is not None for r in records)
        stats["max_action_s"] = max([stats["max_action_s"], *(r.seconds for r in records)])
        stats["oversize_results"] += sum(r.result is not None and len(r.result) > executor.max_result_chars for r in records)
        if bar:
            bar.update(len(records))
    if bar:
        bar.close()
    stats["max_action_s"], stats["max_grounding_s"] = round(stats["max_action_s"], 3), round(stats["max_grounding_s"], 3)
    return stats


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=20_000, help="actions to run (default 20000)")
    p.add_argument("--family", choices=sorted(TOOLS), default="maths", help="which executor (default maths)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    a = p.parse_args(argv)
    if a.n < 1:
        p.error("--n must be at least 1")
    stats = fuzz(a.n, a.family, a.seed, progress=True)
    print(json.dumps(stats, indent=1))
    return 1 if stats["uncaught"] or stats["oversize_results"] else 0


if __name__ == "__main__":
    sys.exit(main())
